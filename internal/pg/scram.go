package pg

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"

	"golang.org/x/text/unicode/norm"
)

// ScramVerifier computes the SCRAM-SHA-256 verifier PostgreSQL stores for a password,
// as libpq's PQencryptPasswordConn does, so ALTER ROLE … PASSWORD never carries the
// password itself: a server that logs statements logs only the verifier.
func ScramVerifier(password string) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	return scramVerifierWithSalt(password, salt, 4096)
}

func scramVerifierWithSalt(password string, salt []byte, iterations int) (string, error) {
	// SASLprep, as the server applies it to what clients send: NFKC covers what
	// matters for real passwords (accents typed in either composed or decomposed form).
	p := norm.NFKC.String(password)
	salted, err := pbkdf2.Key(sha256.New, p, salt, iterations, sha256.Size)
	if err != nil {
		return "", fmt.Errorf("deriving the password key: %w", err)
	}
	clientKey := hmacSHA256(salted, "Client Key")
	storedKey := sha256.Sum256(clientKey)
	serverKey := hmacSHA256(salted, "Server Key")
	b64 := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", iterations, b64(salt), b64(storedKey[:]), b64(serverKey)), nil
}

func hmacSHA256(key []byte, msg string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}
