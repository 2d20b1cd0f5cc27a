package routing

import (
	"strings"
	"testing"
)

// Every ISO 3166-1 alpha-2 code, independently of the region lists.
const iso3166 = `AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ
CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR
GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP
KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ
NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW
SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ
UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW`

func TestDefaultRegionsCoverEveryCountryOnce(t *testing.T) {
	codes := strings.Fields(iso3166)
	if len(codes) != 249 {
		t.Fatalf("reference list has %d codes, want 249", len(codes))
	}
	m := DefaultRegions()
	for _, cc := range codes {
		if m.Region(cc) == "" {
			t.Errorf("country %s has no region", cc)
		}
	}
	// 249 ISO codes plus Kosovo's XK, which GeoIP databases use.
	if len(m) != 250 {
		t.Errorf("map has %d countries, want 250: a code is listed twice or is not ISO", len(m))
	}
	seen := map[string]string{}
	for region, list := range defaultRegionCountries {
		for _, cc := range strings.Fields(list) {
			if prev, dup := seen[cc]; dup {
				t.Errorf("%s listed in both %s and %s", cc, prev, region)
			}
			seen[cc] = region
		}
	}
}

// The ~40 countries v1 mapped keep v1's region.
func TestDefaultRegionsAgreeWithV1(t *testing.T) {
	v1 := map[string]string{
		"sa": "BR AR CL PE CO UY PY BO EC VE",
		"us": "US CA MX",
		"eu": "PT ES FR DE NL IT GB IE BE CH AT PL CZ SE NO DK FI RU UA",
		"ap": "JP KR TW HK SG MY TH VN ID PH AU NZ CN IN",
	}
	m := DefaultRegions()
	for region, list := range v1 {
		for _, cc := range strings.Fields(list) {
			if got := m.Region(cc); got != region {
				t.Errorf("%s: region %q, v1 had %q", cc, got, region)
			}
		}
	}
}

func TestRegionOverrides(t *testing.T) {
	m, err := WithOverrides(map[string]string{"za": "AF", "BR": "sa-east"})
	if err != nil {
		t.Fatal(err)
	}
	if m.Region("ZA") != "af" || m.Region("BR") != "sa-east" || m.Region("FR") != "eu" {
		t.Fatalf("overrides not applied: ZA=%s BR=%s FR=%s", m.Region("ZA"), m.Region("BR"), m.Region("FR"))
	}
	for _, bad := range []map[string]string{{"FRA": "eu"}, {"F1": "eu"}, {"FR": " "}} {
		if _, err := WithOverrides(bad); err == nil {
			t.Errorf("override %v accepted", bad)
		}
	}
}
