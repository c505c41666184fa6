package delivery

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/switchboard-run/switchboard/runtime/store"
)

// SecretPrefix starts every endpoint secret: "whsec_" and the base64 of the key bytes.
const SecretPrefix = "whsec_"

// secretKey returns the HMAC key of a secret: the base64 after SecretPrefix.
func secretKey(s store.Secret) ([]byte, error) {
	raw, ok := strings.CutPrefix(string(s), SecretPrefix)
	if !ok {
		return nil, errors.New("decoding an endpoint secret: no whsec_ prefix")
	}
	key, err := base64.StdEncoding.DecodeString(raw)
	if err != nil {
		return nil, fmt.Errorf("decoding an endpoint secret: %w", err)
	}
	return key, nil
}

// Sign returns the webhook-signature header of a request: "v1," and the base64 HMAC-SHA256
// of "{msgID}.{timestamp}.{body}" for each secret, space separated (Standard Webhooks).
func Sign(secrets []store.Secret, msgID string, timestamp int64, body []byte) (string, error) {
	sigs := make([]string, 0, len(secrets))
	for _, s := range secrets {
		key, err := secretKey(s)
		if err != nil {
			return "", err
		}
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(msgID))
		mac.Write([]byte{'.'})
		mac.Write(strconv.AppendInt(nil, timestamp, 10))
		mac.Write([]byte{'.'})
		mac.Write(body)
		sigs = append(sigs, "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	}
	return strings.Join(sigs, " "), nil
}

// MessageID is the webhook-id of an event at an endpoint: "msg_" and 130 bits of the
// SHA-256 of both ids, so the same on every attempt, in every process, and on a replay.
func MessageID(eventID, endpointID string) string {
	sum := sha256.Sum256([]byte(eventID + "\x00" + endpointID))
	return "msg_" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:17]))[:26]
}
