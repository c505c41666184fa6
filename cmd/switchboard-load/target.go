package main

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
)

var errNotLoopback = errors.New("not a loopback address: this tool only sends to 127.0.0.0/8, ::1 or localhost")

// checkLoopback refuses a URL whose host is not a loopback address or "localhost". It does
// not resolve names: anything but the literal name localhost must be an IP literal, so that
// no DNS answer can send load elsewhere.
func checkLoopback(rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return fmt.Errorf("parsing url %q: %w", rawURL, err)
	}
	if u.Host == "" {
		return fmt.Errorf("url %q has no host", rawURL)
	}
	if err := checkLoopbackHost(u.Hostname()); err != nil {
		return fmt.Errorf("url %q: %w", redactURL(u), err)
	}
	return nil
}

// checkLoopbackHost accepts localhost and loopback IP literals.
func checkLoopbackHost(host string) error {
	if strings.EqualFold(strings.TrimSuffix(host, "."), "localhost") {
		return nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("host %q: %w", host, errNotLoopback)
	}
	if !ip.Unmap().IsLoopback() {
		return fmt.Errorf("host %q: %w", host, errNotLoopback)
	}
	return nil
}

// dialLoopbackOnly is a net.Dialer Control that refuses, at connect time, any address that
// is not loopback: the second line of defence after checkLoopback (localhost could be
// mapped elsewhere in /etc/hosts).
func dialLoopbackOnly(network, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return fmt.Errorf("dialing %s: %w", address, err)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.Unmap().IsLoopback() {
		return fmt.Errorf("dialing %s: %w", address, errNotLoopback)
	}
	return nil
}

// redactURL hides a password in a URL that goes into an error message.
func redactURL(u *url.URL) string {
	return u.Redacted()
}

// target is one server under load.
type target struct {
	Name string
	URL  string
	PID  int // 0: unknown, no /proc figures
	// Users, when positive, replaces -users for this target (-users-of), so that one
	// interleaved run can compare, say, 1,000 subscriptions with 1,000,000.
	Users int64
}

// parseTarget reads name=URL@PID, name=URL or URL. The PID is taken from after the last
// '@' only when what follows is all digits, so a URL with user info still parses.
func parseTarget(s string) (target, error) {
	var t target
	rest := s
	if name, u, ok := strings.Cut(s, "="); ok && !strings.Contains(name, "://") {
		t.Name, rest = name, u
	}
	if i := strings.LastIndexByte(rest, '@'); i >= 0 {
		if pid, err := strconv.Atoi(rest[i+1:]); err == nil {
			if pid <= 0 {
				return target{}, fmt.Errorf("target %q: pid %d is not positive", s, pid)
			}
			t.PID, rest = pid, rest[:i]
		}
	}
	t.URL = rest
	u, err := url.Parse(t.URL)
	if err != nil {
		return target{}, fmt.Errorf("target %q: %w", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return target{}, fmt.Errorf("target %q: scheme %q is not http or https", s, u.Scheme)
	}
	if err := checkLoopback(t.URL); err != nil {
		return target{}, fmt.Errorf("refusing target: %w", err)
	}
	if t.Name == "" {
		t.Name = u.Host
	}
	return t, nil
}
