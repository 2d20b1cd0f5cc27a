package main

import (
	"fmt"
	"path/filepath"
	"strings"
)

// caddyfile is one POP: edgeroute clustered with a key, bgp announcing the
// anycast address to the internet router, wg6pn meshing with the other
// POPs, app demo on port 80 (plain) and 443 (TLS terminated here with
// Caddy's internal CA, whose storage the three POPs share so one root
// verifies them all), the status page and the v1 registration API.
func caddyfile(dir string, p popSpec, hash string) string {
	var join []string
	for _, q := range pops {
		if q.name != p.name {
			join = append(join, q.ip+":7946")
		}
	}
	return fmt.Sprintf(`{
	admin 127.0.0.1:2019
	storage file_system %[1]s/caddy
	skip_install_trust
	auto_https disable_redirects
	http_port 8088
	log {
		output file %[1]s/%[2]s/caddy.log
	}
	edgeroute {
		db %[1]s/%[2]s/routing.db
		node %[2]s
		region %[3]s
		country %[4]s
		cluster {
			bind %[5]s:7946
			join %[6]s
			key {file.%[1]s/cluster.key}
		}
		health demo {
			tcp
			interval 2s
		}
	}
	bgp {
		asn %[7]d
		router_id %[5]s
		listen off
		peer %[8]s {
			remote_as %[9]d
			local_address %[5]s
			hold 9s
			connect_retry 1s
			families ipv4
		}
		announce %[10]s/32 {
			assign lo
			rise 1
			fall 1
		}
		drain {
			wait 3s
		}
	}
	wg6pn {
		network %[11]s
		subnet %[12]s
		listen_port 51820
		endpoint %[5]s:51820
		interface %[13]s
		private_key_file %[1]s/%[2]s/wg.key
	}
	layer4 {
		:80 {
			route {
				edgeroute demo
			}
		}
		:443 {
			route {
				tls {
					connection_policy {
						alpn http/1.1
					}
				}
				edgeroute demo
			}
		}
	}
}

# The certificate for the anycast address, from the internal CA; the TLS
# of port 443 is terminated by the layer4 route above.
https://%[10]s:8443 {
	tls internal
	respond "TLS for %[10]s is terminated on port 443 of every POP"
}

# The status page of the edge as this POP sees it.
http://:%[14]d {
	basic_auth {
		%[15]s %[16]s
	}
	edgeroute_status
}

# edgeProxy v1's registration API, for the backends behind this POP.
http://:%[17]d {
	edgeroute_api {
		token {file.%[1]s/api.token}
		heartbeat_ttl %[18]s
	}
}
`, dir, p.name, p.region, p.country, p.ip, strings.Join(join, " "), p.asn, routerIP, routerASN, anycast,
		network6, p.subnet, p.wg(), statusPort, statusUser, hash, apiPort, heartbeatTTL)
}

// corefile serves .internal on the POP's address from its replicated table.
func corefile(dir string, p popSpec) string {
	return fmt.Sprintf(`internal:53 {
	bind %s
	internal {
		db %s
		region %s
	}
	errors
}
`, p.ip, filepath.Join(dir, p.name, "routing.db"), p.region)
}

// birdConf is the internet router: a passive eBGP session to every POP,
// accepting only the anycast address, giving a route that carries
// GRACEFUL_SHUTDOWN (a draining POP) the lowest preference as RFC 8326
// asks, and installing the best route in the kernel so the client's
// packets follow it.
func birdConf() string {
	var b strings.Builder
	fmt.Fprintf(&b, `router id %[1]s;
protocol device { scan time 1; }
protocol kernel {
	ipv4 { export where net = %[2]s/32; };
}
filter from_pop {
	if net != %[2]s/32 then reject;
	if (65535, 0) ~ bgp_community then bgp_local_pref = 0;
	accept;
}
template bgp pop {
	local %[1]s as %[3]d;
	hold time 9;
	passive on;
	error wait time 1, 5;
	ipv4 { import filter from_pop; export none; };
}
`, routerIP, anycast, routerASN)
	for _, p := range pops {
		fmt.Fprintf(&b, "protocol bgp %s from pop { neighbor %s as %d; }\n", p.name, p.ip, p.asn)
	}
	return b.String()
}
