package cli

import "testing"

func TestLoopbackURL(t *testing.T) {
	for url, want := range map[string]bool{
		"http://127.0.0.1:7070":         true,
		"http://localhost:7070":         true,
		"http://[::1]:7070":             true,
		"http://127.0.0.2:7070":         true,
		"https://fleet.example.com":     false,
		"http://10.0.0.5:7070":          false,
		"http://0.0.0.0:7070":           false,
		"not a url with a \x7f control": false,
	} {
		if got := loopbackURL(url); got != want {
			t.Errorf("loopbackURL(%q) = %v, want %v", url, got, want)
		}
	}
}
