package query

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed openapi.yaml
var openapiYAML []byte

//go:embed web
var webFS embed.FS

// serveOpenAPI serves the API's contract; it needs no token.
func serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/yaml")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(openapiYAML)
}

// dashboard serves the embedded page at / and its files under /assets/.
// They hold no data: the page asks the API with the token the user enters.
func dashboard() http.Handler {
	sub, err := fs.Sub(webFS, "web")
	if err != nil {
		panic("BUG: embedded web folder: " + err.Error())
	}
	files := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "no-referrer")
		w.Header().Set("Cache-Control", "no-cache")
		if r.URL.Path == "/" {
			http.ServeFileFS(w, r, sub, "index.html")
			return
		}
		r2 := r.Clone(r.Context())
		r2.URL.Path = r.URL.Path[len("/assets"):]
		files.ServeHTTP(w, r2)
	})
}
