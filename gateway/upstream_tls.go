package gateway

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// UpstreamTLS says how the gateway reaches a server that serves TLS. The
// zero value: plaintext.
type UpstreamTLS struct {
	// CAFile holds the PEM certificates the server's certificate must chain
	// to. Empty: plaintext (and the other fields must be empty too).
	CAFile string
	// CertFile and KeyFile: the gateway's own certificate and key, for a
	// server that asks for one (mTLS). Read again at each new connection, so
	// rotating them needs no restart.
	CertFile, KeyFile string
	// ServerName overrides the name checked in the server's certificate
	// (default: the host of Upstream).
	ServerName string
}

// Credentials are the transport credentials of the upstream connection.
func (t UpstreamTLS) Credentials() (credentials.TransportCredentials, error) {
	if t.CAFile == "" {
		if t.CertFile != "" || t.KeyFile != "" || t.ServerName != "" {
			return nil, errors.New("gateway: a client certificate or server name for the upstream needs its CA file")
		}
		return insecure.NewCredentials(), nil
	}
	pem, err := os.ReadFile(t.CAFile)
	if err != nil {
		return nil, fmt.Errorf("gateway: upstream CA file: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("gateway: upstream CA file %s holds no PEM certificate", t.CAFile)
	}
	config := &tls.Config{RootCAs: roots, ServerName: t.ServerName, MinVersion: tls.VersionTLS12}
	if (t.CertFile == "") != (t.KeyFile == "") {
		return nil, errors.New("gateway: the upstream client certificate needs both its certificate and key files")
	}
	if t.CertFile != "" {
		pair := &keyPairFiles{cert: t.CertFile, key: t.KeyFile}
		if _, err := pair.load(); err != nil {
			return nil, err
		}
		config.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return pair.load() }
	}
	return credentials.NewTLS(config), nil
}

// keyPairFiles reads a certificate and its key, again when either file
// changed; a pair that no longer loads keeps the last good one.
type keyPairFiles struct {
	cert, key string

	mu     sync.Mutex
	stamp  string
	loaded *tls.Certificate
}

func (p *keyPairFiles) load() (*tls.Certificate, error) {
	stamp, err := fileStamp(p.cert, p.key)
	p.mu.Lock()
	defer p.mu.Unlock()
	if err == nil && stamp == p.stamp && p.loaded != nil {
		return p.loaded, nil
	}
	pair, loadErr := tls.LoadX509KeyPair(p.cert, p.key)
	if loadErr != nil {
		if p.loaded != nil {
			return p.loaded, nil
		}
		return nil, fmt.Errorf("gateway: upstream client certificate: %w", loadErr)
	}
	p.stamp, p.loaded = stamp, &pair
	return p.loaded, nil
}

func fileStamp(paths ...string) (string, error) {
	stamp := ""
	for _, path := range paths {
		info, err := os.Stat(path)
		if err != nil {
			return "", err
		}
		stamp += fmt.Sprintf("%s:%d:%d;", path, info.ModTime().UnixNano(), info.Size())
	}
	return stamp, nil
}
