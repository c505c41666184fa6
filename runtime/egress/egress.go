// Package egress is the HTTP client for requests whose destination a connector author or an
// integration owner controls: apiClient calls, channels and delivery endpoints. Its guard
// refuses, unless private networks are allowed, every address that is not public, and it
// checks the address actually dialled (after DNS resolution, on every connection and every
// redirect hop), so no name, redirect or proxy routes around it. The guard is the security
// boundary; IsPublic also lets callers refuse an obviously internal URL early, with a clearer
// message, but that early check is a courtesy, not the protection.
package egress

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"
)

// ErrPrivateAddress: a request was about to reach a loopback, private or
// otherwise internal address, and --allow-private-networks is off.
var ErrPrivateAddress = errors.New("address is not public")

// Client is the HTTP client for calls whose destination a connector author or an
// integration owner controls (apiClient, channels, endpoints). Unless allowPrivate is set,
// it refuses to connect to any address that is not public: loopback, private ranges,
// link-local (cloud metadata services live there), CGNAT, multicast and reserved ranges.
// The check runs on the address actually dialled, after DNS resolution, so a name that
// resolves (or later re-resolves) to an internal address is refused too; redirects and
// proxies cannot route around it, since proxies from the environment are not used and every
// redirect hop is dialled through the same check.
func Client(allowPrivate bool) *http.Client {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	if !allowPrivate {
		d.Control = refuseInternal
	}
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			Proxy:                 nil,
			DialContext:           d.DialContext,
			ForceAttemptHTTP2:     true,
			MaxIdleConns:          100,
			MaxIdleConnsPerHost:   10,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   10 * time.Second,
			ExpectContinueTimeout: time.Second,
		},
	}
}

// refuseInternal is a net.Dialer Control function: address is the resolved ip:port.
func refuseInternal(network, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return fmt.Errorf("dialing %s: %w", address, err)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("dialing %s: %w", address, err)
	}
	if !IsPublic(ip) {
		return fmt.Errorf("dialing %s: %w (set --allow-private-networks for local development)", address, ErrPrivateAddress)
	}
	return nil
}

// internalPrefixes are the ranges beyond what netip's predicates cover that must not be
// reached from a connector's API calls.
var internalPrefixes = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),      // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),  // carrier-grade NAT
	netip.MustParsePrefix("192.0.0.0/24"),   // IETF protocol assignments
	netip.MustParsePrefix("198.18.0.0/15"),  // benchmarking
	netip.MustParsePrefix("240.0.0.0/4"),    // reserved, and broadcast
	netip.MustParsePrefix("64:ff9b::/96"),   // NAT64: embeds any IPv4 address
	netip.MustParsePrefix("64:ff9b:1::/48"), // local-use NAT64
	netip.MustParsePrefix("2002::/16"),      // 6to4: embeds any IPv4 address
	netip.MustParsePrefix("100::/64"),       // discard-only
	netip.MustParsePrefix("2001:db8::/32"),  // documentation
	netip.MustParsePrefix("fec0::/10"),      // deprecated site-local
}

// IsPublic reports whether ip may be reached with private networks disallowed.
func IsPublic(ip netip.Addr) bool {
	ip = ip.Unmap()
	if !ip.IsValid() || ip.IsLoopback() || ip.IsPrivate() || ip.IsUnspecified() ||
		ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.IsInterfaceLocalMulticast() ||
		ip.IsMulticast() {
		return false
	}
	for _, p := range internalPrefixes {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}
