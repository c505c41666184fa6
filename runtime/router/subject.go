package router

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

var (
	// ErrInvalidSubjectToken: a value that would become part of a NATS subject is empty or
	// holds '.', '*', '>' or white space.
	ErrInvalidSubjectToken = errors.New("invalid subject token")
)

// EventSubject returns the subject of a routed event:
// events.{organizationID}.apps.app.event_received.{integrationKey}.{sourceKey}.{eventKey},
// where sourceKey is the global webhook key (or channel key) and eventKey the subscription's
// event key (or the channel event type).
func EventSubject(organizationID, integrationKey, sourceKey, eventKey string) (string, error) {
	if err := checkTokens(
		"organization id", organizationID,
		"integration key", integrationKey,
		"source key", sourceKey,
		"event key", eventKey,
	); err != nil {
		return "", err
	}
	return "events." + organizationID + "." + SourceApps + "." + ResourceApp + "." + EventNameReceived +
		"." + integrationKey + "." + sourceKey + "." + eventKey, nil
}

// ChannelEventSubject returns the subject of an event from a channel:
// events.{organizationID}.apps.app.event_received.{integrationKey}.{channelKey}.{eventType}.
// A channel's event type is named by the external app and often holds dots (SPEC 2.4's
// order.created): they are kept, so the type spans the subject's last tokens
// (...orders.order.created). Every other part, and each dot-separated part of the type,
// must be a valid token: no empty part, '*', '>' or white space.
func ChannelEventSubject(organizationID, integrationKey, channelKey, eventType string) (string, error) {
	if err := checkTokens(
		"organization id", organizationID,
		"integration key", integrationKey,
		"channel key", channelKey,
	); err != nil {
		return "", err
	}
	for part := range strings.SplitSeq(eventType, ".") {
		if !validToken(part) {
			return "", fmt.Errorf("building subject: event type %q: %w", eventType, ErrInvalidSubjectToken)
		}
	}
	return "events." + organizationID + "." + SourceApps + "." + ResourceApp + "." + EventNameReceived +
		"." + integrationKey + "." + channelKey + "." + eventType, nil
}

// StateSubject returns the subject of a state change:
// events.{organizationID}.apps.{resource}.{eventName}.{id}, for example
// events.cust_42.apps.subscription.created.sub_1.
func StateSubject(organizationID, resource, eventName, id string) (string, error) {
	if err := checkTokens(
		"organization id", organizationID,
		"resource", resource,
		"event name", eventName,
		"resource id", id,
	); err != nil {
		return "", err
	}
	return "events." + organizationID + "." + SourceApps + "." + resource + "." + eventName + "." + id, nil
}

// checkTokens takes (name, value) pairs and fails on the first value that is not a valid
// subject token.
func checkTokens(namesAndValues ...string) error {
	for i := 0; i+1 < len(namesAndValues); i += 2 {
		if v := namesAndValues[i+1]; !validToken(v) {
			return fmt.Errorf("building subject: %s %q: %w", namesAndValues[i], v, ErrInvalidSubjectToken)
		}
	}
	return nil
}

// validToken reports whether s can be one token of a concrete NATS subject.
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf {
			// Rare: check the rest rune by rune for Unicode white space and bad encoding.
			return !strings.ContainsFunc(s[i:], func(r rune) bool {
				return r == utf8.RuneError || unicode.IsSpace(r) || r == '.' || r == '*' || r == '>' || r <= 0x20 || r == 0x7f
			})
		}
		if c <= ' ' || c == 0x7f || c == '.' || c == '*' || c == '>' {
			return false
		}
	}
	return true
}
