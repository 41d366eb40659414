// Package recipient decides how the recipients of e-mail campaigns (and
// any visitor a sender names) appear in the event stream: a hit with an
// explicit visitor id (the uid a sender puts in its pixel and link URLs,
// such as a subscriber id) gets a keyed hash of that id scoped to the
// content id's tenant (visitor.Keyer.RecipientKey), and, only where the
// Rules allow it, the id as sent.
package recipient

import (
	"fmt"
	"strings"

	"github.com/pixelpipe/pixelpipe/schemas"
)

// Rules say for which tenants and campaigns events carry recipient ids as
// the sender gave them. The zero value (and nil) allows none.
type Rules struct {
	all       bool
	tenants   map[string]bool
	campaigns map[[2]string]bool // tenant, campaign
}

// ParseRules reads "ENTRY,ENTRY,...", each entry a tenant ("acme": every
// campaign of acme's content ids), a tenant and one campaign
// ("acme/spring"), or "*" (every tenant). Empty text allows none. A
// content id without a tenant is tenant "" (entry "/spring" names its
// campaign spring).
func ParseRules(s string) (*Rules, error) {
	r := &Rules{tenants: map[string]bool{}, campaigns: map[[2]string]bool{}}
	for entry := range strings.SplitSeq(s, ",") {
		entry = strings.TrimSpace(entry)
		switch tenant, campaign, hasCampaign := strings.Cut(entry, "/"); {
		case entry == "":
		case entry == "*":
			r.all = true
		case !hasCampaign && tenant != "" && schemas.ValidID(tenant):
			r.tenants[tenant] = true
		case hasCampaign && campaign != "" && (tenant == "" || schemas.ValidID(tenant)) && schemas.ValidID(campaign):
			r.campaigns[[2]string{tenant, campaign}] = true
		default:
			return nil, fmt.Errorf("bad entry %q: use TENANT, TENANT/CAMPAIGN or * (ids of A-Z a-z 0-9 . _ : -)", entry)
		}
	}
	return r, nil
}

// Allow reports whether events of tenant's content ids under campaign
// carry the recipient id as sent.
func (r *Rules) Allow(tenant, campaign string) bool {
	if r == nil {
		return false
	}
	return r.all || r.tenants[tenant] || (campaign != "" && r.campaigns[[2]string{tenant, campaign}])
}
