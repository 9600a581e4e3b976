package e2e

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// The e2e server checks tokens as a deployment does: a signing key made by
// the segments-token built beside the server, its JWKS given to the server,
// and a token per role. Requests carry the admin token unless a test sets
// its own Authorization header (or asks for none with noAuthorization).

const testIssuer = "segments-e2e"

var (
	tokensDir string            // the key, the JWKS and the tokens
	tokens    map[string]string // role -> JWT
)

// noAuthorization as a request's Authorization header sends none.
const noAuthorization = "-"

// makeTokens runs segments-token (next to the server binary) into a
// temporary folder.
func makeTokens(serverBin string) error {
	tool := filepath.Join(filepath.Dir(serverBin), "segments-token")
	dir, err := os.MkdirTemp("", "segments-e2e-tokens-")
	if err != nil {
		return err
	}
	tokensDir = dir
	run := func(args ...string) (string, error) {
		out, err := exec.Command(tool, args...).Output()
		if err != nil {
			if ee, ok := err.(*exec.ExitError); ok {
				return "", fmt.Errorf("%s %s: %v: %s", tool, strings.Join(args, " "), err, ee.Stderr)
			}
			return "", err
		}
		return strings.TrimSpace(string(out)), nil
	}
	key := filepath.Join(dir, "signing-key.jwk")
	if _, err := run("keygen", "--kid=e2e", "--out="+key); err != nil {
		return err
	}
	jwks, err := run("jwks", key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "jwks.json"), []byte(jwks), 0o644); err != nil {
		return err
	}
	tokens = map[string]string{}
	for _, role := range []string{"service", "support", "analyst", "admin"} {
		if tokens[role], err = run("mint", "--key="+key, "--sub=e2e-"+role, "--role="+role, "--issuer="+testIssuer); err != nil {
			return err
		}
	}
	return nil
}

// authFlags are the server's flags for the tokens of makeTokens.
func authFlags() []string {
	return []string{"--auth-jwks-file=" + filepath.Join(tokensDir, "jwks.json"), "--auth-issuer=" + testIssuer}
}

// withAdminToken adds the admin token to requests that set no
// Authorization header, and drops the header set to noAuthorization.
type withAdminToken struct{ base http.RoundTripper }

func (t withAdminToken) RoundTrip(r *http.Request) (*http.Response, error) {
	switch r.Header.Get("Authorization") {
	case "":
		r = r.Clone(r.Context())
		r.Header.Set("Authorization", "Bearer "+tokens["admin"])
	case noAuthorization:
		r = r.Clone(r.Context())
		r.Header.Del("Authorization")
	}
	return t.base.RoundTrip(r)
}
