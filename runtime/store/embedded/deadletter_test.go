package embedded_test

import (
	"path/filepath"
	"testing"

	"github.com/switchboard-run/switchboard/runtime/store/storetest"
)

func TestIngestDeadLetterConformance(t *testing.T) {
	storetest.RunIngestDeadLetters(t, func(t *testing.T) storetest.IngestDeadLetterStore {
		return openTestStore(t, filepath.Join(t.TempDir(), "switchboard.db"))
	})
}
