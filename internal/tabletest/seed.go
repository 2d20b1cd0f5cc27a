// Package tabletest holds the routing-table layout that the table
// benchmarks of several packages share.
package tabletest

import "fmt"

// BackendsSQL is one statement inserting n backends, b0 to b<n-1>, into
// a file's backends table: 100 apps of equal size over five regions (sa,
// eu, us, ap, af, in countries BR, DE, US, JP, ZA), as bench/table lays
// them out.
func BackendsSQL(n int) string {
	return fmt.Sprintf(`WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i < %d)
INSERT INTO backends (id, app, region, country, wg_ip, port)
SELECT 'b' || i, 'app' || (i %% 100), CASE (i / 100) %% 5 WHEN 0 THEN 'sa' WHEN 1 THEN 'eu' WHEN 2 THEN 'us' WHEN 3 THEN 'ap' ELSE 'af' END,
	CASE (i / 100) %% 5 WHEN 0 THEN 'BR' WHEN 1 THEN 'DE' WHEN 2 THEN 'US' WHEN 3 THEN 'JP' ELSE 'ZA' END,
	'10.' || ((i >> 16) & 255) || '.' || ((i >> 8) & 255) || '.' || (i & 255), 8000 + i %% 1000 FROM c`, n-1)
}
