package query

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
)

// allTenants is the tenant of a token that reads every tenant's counts.
const allTenants = "*"

type tenantKey struct{}

// auth resolves the bearer token to its tenant (401 when there is none),
// and passes the tenant on in the request context.
func (s *Server) auth(next http.HandlerFunc) http.Handler {
	tokens := map[[32]byte]string{}
	if s.cfg.Token != "" {
		tokens[sha256.Sum256([]byte(s.cfg.Token))] = allTenants
	}
	for tok, tenant := range s.cfg.Tokens {
		tokens[sha256.Sum256([]byte(tok))] = tenant
	}
	open := len(tokens) == 0
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tenant := allTenants
		if !open {
			tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			tenant = lookupToken(tokens, tok)
			if !ok || tenant == "" {
				w.Header().Set("WWW-Authenticate", `Bearer realm="pixelpipe"`)
				writeError(w, http.StatusUnauthorized, "missing or wrong bearer token: send the header Authorization: Bearer <token>")
				return
			}
		}
		next(w, r.WithContext(context.WithValue(r.Context(), tenantKey{}, tenant)))
	})
}

// lookupToken finds tok's tenant, comparing hashes in constant time so the
// answer's timing says nothing about how much of a token matched.
func lookupToken(tokens map[[32]byte]string, tok string) string {
	if tok == "" {
		return ""
	}
	h := sha256.Sum256([]byte(tok))
	found := ""
	for k, tenant := range tokens {
		if subtle.ConstantTimeCompare(k[:], h[:]) == 1 {
			found = tenant
		}
	}
	return found
}

// tenantOf returns the tenant of a content id under the configured rule:
// the part before the first TenantSeparator ("" when there is none).
func (s *Server) tenantOf(cid string) string {
	t, _, ok := strings.Cut(cid, s.cfg.TenantSeparator)
	if !ok {
		return ""
	}
	return t
}

// allowFunc returns whether the request's tenant may read a content id.
func (s *Server) allowFunc(r *http.Request) func(cid string) bool {
	tenant, _ := r.Context().Value(tenantKey{}).(string)
	return func(cid string) bool {
		return tenant == allTenants || (tenant != "" && s.tenantOf(cid) == tenant)
	}
}

// checkContent answers 403 and reports false when the request's tenant may
// not read cid.
func (s *Server) checkContent(w http.ResponseWriter, r *http.Request, cid string) bool {
	if s.allowFunc(r)(cid) {
		return true
	}
	writeError(w, http.StatusForbidden, "content id "+quote(cid)+" is outside this token's tenant: its ids start with \"<tenant>"+s.cfg.TenantSeparator+"\"")
	return false
}
