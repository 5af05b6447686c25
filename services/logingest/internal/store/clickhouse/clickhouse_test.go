package clickhouse_test

import (
	"testing"

	"github.com/infrapilot/infrapilot/services/logingest/internal/store/clickhouse/chtest"
	"github.com/infrapilot/infrapilot/services/logingest/internal/store/storetest"
)

func TestContract(t *testing.T) { storetest.Run(t, chtest.New) }
