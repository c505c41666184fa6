package embedded_test

import (
	"path/filepath"
	"testing"

	"github.com/switchboard-run/switchboard/runtime/store/storetest"
)

func TestEndpointConformance(t *testing.T) {
	storetest.RunEndpoints(t, func(t *testing.T) storetest.EndpointStore {
		return openTestStore(t, filepath.Join(t.TempDir(), "switchboard.db"))
	})
}
