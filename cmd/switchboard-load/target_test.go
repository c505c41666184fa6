package main

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckLoopback(t *testing.T) {
	tests := []struct {
		url string
		ok  bool
	}{
		{"http://127.0.0.1:8080/webhooks/x", true},
		{"http://127.1.2.3/", true},
		{"http://localhost:8080/", true},
		{"http://LOCALHOST./", true},
		{"http://[::1]:8080/", true},
		{"http://[::ffff:127.0.0.1]:80/", true},
		{"redis://127.0.0.1:6379/0", true},
		{"http://10.0.0.1/", false},
		{"http://192.168.1.10:8080/", false},
		{"http://172.16.0.1/", false},
		{"http://0.0.0.0:8080/", false},
		{"http://[::]:8080/", false},
		{"http://8.8.8.8/", false},
		{"http://example.com/", false},
		{"http://localhost.example.com/", false},
		{"http://127.0.0.1.nip.io/", false},
		{"http://[::ffff:10.0.0.1]/", false},
		{"http://[fe80::1%25eth0]/", false},
		{"redis://user:secret@10.1.1.1:6379", false},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			err := checkLoopback(tt.url)
			if tt.ok && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !tt.ok {
				if !errors.Is(err, errNotLoopback) {
					t.Fatalf("err = %v, want errNotLoopback", err)
				}
				if strings.Contains(err.Error(), "secret") {
					t.Errorf("error shows the password: %v", err)
				}
			}
		})
	}
	for _, bad := range []string{"", "127.0.0.1:8080", "::not a url"} {
		if err := checkLoopback(bad); err == nil {
			t.Errorf("checkLoopback(%q) = nil, want an error", bad)
		}
	}
}

func TestDialLoopbackOnly(t *testing.T) {
	for addr, ok := range map[string]bool{
		"127.0.0.1:80": true, "[::1]:80": true, "127.9.9.9:1": true,
		"10.0.0.1:80": false, "[2001:db8::1]:80": false, "localhost:80": false,
	} {
		if err := dialLoopbackOnly("tcp", addr, nil); (err == nil) != ok {
			t.Errorf("dialLoopbackOnly(%q) = %v, want ok=%v", addr, err, ok)
		}
	}
}

func TestParseTarget(t *testing.T) {
	tests := []struct {
		in   string
		want target
		err  string
	}{
		{in: "sb=http://127.0.0.1:8080/webhooks/tok@1234", want: target{Name: "sb", URL: "http://127.0.0.1:8080/webhooks/tok", PID: 1234}},
		{in: "go=http://127.0.0.1:8081/x", want: target{Name: "go", URL: "http://127.0.0.1:8081/x", PID: 0}},
		{in: "http://127.0.0.1:8081/x@77", want: target{Name: "127.0.0.1:8081", URL: "http://127.0.0.1:8081/x", PID: 77}},
		{in: "http://localhost:8081/a?b=c", want: target{Name: "localhost:8081", URL: "http://localhost:8081/a?b=c", PID: 0}},
		{in: "u=http://me:pw@127.0.0.1/@9", want: target{Name: "u", URL: "http://me:pw@127.0.0.1/", PID: 9}},
		{in: "x=http://10.0.0.1/@1", err: "not a loopback"},
		{in: "x=ftp://127.0.0.1/", err: "not http"},
		{in: "x=http://127.0.0.1/@0", err: "not positive"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseTarget(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}
