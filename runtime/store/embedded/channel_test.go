package embedded_test

import (
	"path/filepath"
	"testing"

	"github.com/switchboard-run/switchboard/runtime/store/storetest"
)

func TestChannelConformance(t *testing.T) {
	storetest.RunChannels(t, func(t *testing.T) storetest.ChannelStore {
		return openTestStore(t, filepath.Join(t.TempDir(), "switchboard.db"))
	})
}

func TestChannelPersistence(t *testing.T) {
	storetest.RunChannelPersistence(t, func(t *testing.T) (storetest.ChannelStore, func(t *testing.T) storetest.ChannelStore) {
		path := filepath.Join(t.TempDir(), "data", "switchboard.db")
		reopen := func(t *testing.T) storetest.ChannelStore { return openTestStore(t, path) }
		return openTestStore(t, path), reopen
	})
}
