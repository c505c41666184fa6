package redisstore

import (
	"testing"

	"github.com/switchboard-run/switchboard/runtime/store"
	"github.com/switchboard-run/switchboard/runtime/store/storetest"
)

func TestSeenConformance(t *testing.T) {
	storetest.RunSeen(t, func(t *testing.T) store.SeenStore {
		return openTestStore(t, testRedisURL())
	})
}
