package routing

import (
	"fmt"
	"strings"
)

// The regions edgeProxy v1 knew. Every country maps to one of them by
// default, chosen for the usual network path rather than the continent:
// Africa, the Middle East and Central Asia reach Europe faster than the
// United States, which is where v1 sent every country it did not list.
var defaultRegionCountries = map[string]string{
	"sa": "AR BO BR BV CL CO EC FK GF GS GY PE PY SR UY VE",
	"us": "AG AI AW BB BL BM BQ BS BZ CA CR CU CW DM DO GD GL GP GT HN HT JM KN KY LC MF MQ MS MX NI PA PM PR SV SX TC TT US VC VG VI",
	"eu": "AD AL AT AX BA BE BG BY CH CY CZ DE DK EE ES FI FO FR GB GG GI GR HR HU IE IM IS IT JE LI LT LU LV MC MD ME MK MT NL NO PL PT RO RS RU SE SI SJ SK SM UA VA XK " +
		"AE AM AZ BH GE IL IQ IR JO KW LB OM PS QA SA SY TR YE " +
		"KG KZ TJ TM UZ " +
		"AO BF BI BJ BW CD CF CG CI CM CV DJ DZ EG EH ER ET GA GH GM GN GQ GW KE KM LR LS LY MA MG ML MR MU MW MZ NA NE NG RE RW SC SD SH SL SN SO SS ST SZ TD TG TN TZ UG YT ZA ZM ZW",
	"ap": "AF BD BN BT CN HK ID IN IO JP KH KP KR LA LK MM MN MO MV MY NP PH PK SG TH TL TW VN " +
		"AQ AS AU CC CK CX FJ FM GU HM KI MH MP NC NF NR NU NZ PF PG PN PW SB TF TK TO TV UM VU WF WS",
}

// RegionMap maps ISO 3166-1 alpha-2 country codes (upper case) to region
// codes (lower case).
type RegionMap map[string]string

// DefaultRegions returns a fresh copy of the built-in map, which covers every
// ISO 3166-1 country.
func DefaultRegions() RegionMap {
	m := make(RegionMap, 256)
	for region, list := range defaultRegionCountries {
		for _, cc := range strings.Fields(list) {
			m[cc] = region
		}
	}
	return m
}

// WithOverrides returns the default map with the given country->region pairs
// replacing or adding entries. Country codes must be two letters.
func WithOverrides(overrides map[string]string) (RegionMap, error) {
	m := DefaultRegions()
	for cc, region := range overrides {
		code := strings.ToUpper(strings.TrimSpace(cc))
		if !isCountryCode(code) {
			return nil, fmt.Errorf("region map: %q is not a two-letter country code", cc)
		}
		region = strings.ToLower(strings.TrimSpace(region))
		if region == "" {
			return nil, fmt.Errorf("region map: country %s has an empty region", code)
		}
		m[code] = region
	}
	return m, nil
}

// Region returns the region of a country, or "" when the country is unknown.
func (m RegionMap) Region(country string) string {
	return m[country]
}

func isCountryCode(s string) bool {
	return len(s) == 2 && s[0] >= 'A' && s[0] <= 'Z' && s[1] >= 'A' && s[1] <= 'Z'
}
