package edgeroute

import (
	"encoding/json"
	"fmt"
	"html"
	"html/template"
	"sort"
	"strings"
)

// renderReport draws what another app reported (any JSON-shaped value)
// without knowing its type: its plain fields as one line of key-value
// pairs, each list of objects as a table whose columns are the plain
// fields of its objects (BGP peers, mesh peers). Nested objects deeper
// than that are left to the app's own admin route.
func renderReport(v any) template.HTML {
	b, err := json.Marshal(v)
	if err != nil {
		return template.HTML("<p class=\"error\">" + html.EscapeString(err.Error()) + "</p>")
	}
	var generic any
	if err := json.Unmarshal(b, &generic); err != nil {
		return template.HTML("<p class=\"error\">" + html.EscapeString(err.Error()) + "</p>")
	}
	var out strings.Builder
	obj, ok := generic.(map[string]any)
	if !ok {
		out.WriteString("<p>" + html.EscapeString(scalar(generic)) + "</p>")
		return template.HTML(out.String())
	}
	keys := sortedKeys(obj)
	var pairs []string
	for _, k := range keys {
		if s, ok := plain(obj[k]); ok && s != "" {
			pairs = append(pairs, "<b>"+html.EscapeString(k)+"</b> "+html.EscapeString(s))
		}
	}
	if len(pairs) > 0 {
		out.WriteString("<p class=\"meta\">" + strings.Join(pairs, " · ") + "</p>")
	}
	for _, k := range keys {
		list, ok := obj[k].([]any)
		if !ok || len(list) == 0 {
			continue
		}
		var cols []string
		seen := map[string]bool{}
		for _, item := range list {
			m, ok := item.(map[string]any)
			if !ok {
				continue
			}
			for _, c := range sortedKeys(m) {
				if _, ok := plain(m[c]); ok && !seen[c] {
					seen[c] = true
					cols = append(cols, c)
				}
			}
		}
		if len(cols) == 0 {
			continue
		}
		fmt.Fprintf(&out, "<table class=\"report\" data-report=\"%s\"><thead><tr>", html.EscapeString(k))
		for _, c := range cols {
			out.WriteString("<th>" + html.EscapeString(c) + "</th>")
		}
		out.WriteString("</tr></thead><tbody>")
		for _, item := range list {
			m, _ := item.(map[string]any)
			out.WriteString("<tr>")
			for _, c := range cols {
				s, _ := plain(m[c])
				out.WriteString("<td>" + html.EscapeString(s) + "</td>")
			}
			out.WriteString("</tr>")
		}
		out.WriteString("</tbody></table>")
	}
	return template.HTML(out.String())
}

// plain renders a scalar or a list of scalars; ok is false for objects and
// lists of objects.
func plain(v any) (string, bool) {
	switch x := v.(type) {
	case map[string]any:
		return "", false
	case []any:
		parts := make([]string, 0, len(x))
		for _, e := range x {
			s, ok := plain(e)
			if !ok {
				return "", false
			}
			parts = append(parts, s)
		}
		return strings.Join(parts, ", "), true
	}
	return scalar(v), true
}

func scalar(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case float64:
		if x == float64(int64(x)) {
			return fmt.Sprint(int64(x))
		}
		return fmt.Sprintf("%.1f", x)
	}
	return fmt.Sprint(v)
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
