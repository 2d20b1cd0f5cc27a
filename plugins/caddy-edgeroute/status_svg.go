package edgeroute

import (
	"fmt"
	"html"
	"html/template"
	"math"
	"sort"
	"strings"
	"time"
)

// regionSpots places regions on the picture roughly where they lie on a
// map, so an operator finds a POP where they expect it. Unknown regions
// line up along the bottom.
var regionSpots = map[string][2]float64{
	"us": {190, 120}, "na": {190, 120},
	"sa": {300, 300},
	"eu": {520, 100},
	"af": {540, 290},
	"me": {650, 190},
	"ap": {820, 150}, "as": {820, 150},
	"oc": {870, 320},
}

const svgW, svgH = 1000.0, 400.0

// stateColors give each state its colour on the picture and in the tables.
func stateClass(state string) string {
	switch {
	case state == "serving" || state == "alive" || state == "announced":
		return "ok"
	case state == "draining" || state == "suspect" || strings.HasSuffix(state, "(stale table)"):
		return "warn"
	case state == "stopping" || state == "dead" || state == "left" || state == "withdrawn":
		return "bad"
	}
	return "unknown"
}

var fills = map[string]string{"ok": "#2e9d4a", "warn": "#e0900b", "bad": "#d0343a", "unknown": "#8a8f98"}

// drawEdge draws the POPs by region, the links between them (this POP's
// coloured by the peer's membership), and each POP's state and anycast
// phase. It is drawn here so the page needs no drawing code of its own.
func drawEdge(v StatusView) template.HTML {
	type spot struct {
		x, y float64
		p    PopStatus
	}
	byRegion := map[string][]PopStatus{}
	var regions []string
	for _, p := range v.Pops {
		if _, ok := byRegion[p.Region]; !ok {
			regions = append(regions, p.Region)
		}
		byRegion[p.Region] = append(byRegion[p.Region], p)
	}
	sort.Strings(regions)
	spots := map[string]spot{}
	unknown := 0
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %.0f %.0f" role="img" aria-label="POPs by region" class="edge">`, svgW, svgH)
	fmt.Fprintf(&b, `<rect width="%.0f" height="%.0f" rx="12" fill="#f4f6f9"/>`, svgW, svgH)
	for _, r := range regions {
		c, ok := regionSpots[r]
		if !ok {
			c = [2]float64{100 + float64(unknown)*140, svgH - 40}
			unknown++
		}
		fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" class="region" text-anchor="middle" font-size="44" fill="#dde2ea" font-weight="700">%s</text>`,
			c[0], c[1]-48, html.EscapeString(strings.ToUpper(r)))
		pops := byRegion[r]
		for i, p := range pops {
			// POPs of one region sit side by side around its spot.
			x := c[0] + (float64(i)-float64(len(pops)-1)/2)*110
			spots[p.Node] = spot{x, c[1], p}
		}
	}
	var self *spot
	for _, s := range spots {
		if s.p.Self {
			s := s
			self = &s
		}
	}
	// Links: every pair of POPs meshes; the links from this POP are the
	// ones it knows the state of.
	names := make([]string, 0, len(spots))
	for n := range spots {
		names = append(names, n)
	}
	sort.Strings(names)
	for i, a := range names {
		for _, c := range names[i+1:] {
			sa, sc := spots[a], spots[c]
			col, dash, width := "#c5ccd6", "", 1.5
			if self != nil && (sa.p.Self || sc.p.Self) {
				other := sa.p
				if other.Self {
					other = sc.p
				}
				state := other.Member
				if state == "" {
					state = "unknown"
				}
				col, width = fills[stateClass(state)], 3
				if stateClass(state) != "ok" {
					dash = ` stroke-dasharray="8 6"`
				}
			}
			fmt.Fprintf(&b, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="%s" stroke-width="%.1f"%s/>`,
				sa.x, sa.y, sc.x, sc.y, col, width, dash)
		}
	}
	for _, n := range names {
		s := spots[n]
		cls := stateClass(s.p.State)
		ring := ""
		if s.p.Self {
			ring = fmt.Sprintf(`<circle cx="%.0f" cy="%.0f" r="36" fill="none" stroke="#1f3b63" stroke-width="3"/>`, s.x, s.y)
		}
		fmt.Fprintf(&b, `<g class="pop %s" data-node="%s" data-state="%s">%s<circle cx="%.0f" cy="%.0f" r="30" fill="%s"/>`,
			cls, html.EscapeString(s.p.Node), html.EscapeString(s.p.State), ring, s.x, s.y, fills[cls])
		fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" text-anchor="middle" font-size="15" font-weight="700" fill="#fff">%s</text>`,
			s.x, s.y+5, html.EscapeString(s.p.Node))
		fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" text-anchor="middle" font-size="13" fill="#1d2430">%s</text>`,
			s.x, s.y+50, html.EscapeString(s.p.State))
		for j, a := range s.p.Anycast {
			fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" text-anchor="middle" font-size="11" fill="%s">%s %s</text>`,
				s.x, s.y+66+float64(j)*14, fills[stateClass(a.Phase)], html.EscapeString(a.Prefix), html.EscapeString(a.Phase))
		}
		b.WriteString(`</g>`)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

var statusFuncs = template.FuncMap{
	"stateClass": stateClass,
	"ms": func(v float64) string {
		if v < 0 {
			return "–"
		}
		return fmt.Sprintf("%.1f ms", v)
	},
	"count": func(v int64) string {
		if v < 0 {
			return "–"
		}
		return fmt.Sprint(v)
	},
	"ago": func(now, t time.Time) string {
		if t.IsZero() || t.Unix() <= 0 {
			return "never"
		}
		d := now.Sub(t)
		if d < 0 {
			d = 0
		}
		return (time.Duration(math.Round(d.Seconds())) * time.Second).String() + " ago"
	},
	"clock":  func(t time.Time) string { return t.Format("15:04:05 UTC") },
	"report": renderReport,
}
