package config_test

import (
	"testing"

	"lastunit/shared/config"
)

// TestLoadPreparedStatements: DB_PREPARED_STATEMENTS turns on named prepared statements only
// when it says so; unset means off (the pooler-safe default the stack relies on), and a value
// that is not a boolean stops the process instead of being read as off.
func TestLoadPreparedStatements(t *testing.T) {
	for _, tc := range []struct {
		value   string
		want    bool
		wantErr bool
	}{
		{"", false, false},
		{"false", false, false},
		{"true", true, false},
		{"1", true, false},
		{"yes", false, true},
	} {
		t.Run(tc.value, func(t *testing.T) {
			t.Setenv("DB_PREPARED_STATEMENTS", tc.value)
			c, err := config.Load()
			if (err != nil) != tc.wantErr {
				t.Fatalf("Load() error %v, want error %v", err, tc.wantErr)
			}
			if err == nil && c.DBPreparedStatements != tc.want {
				t.Fatalf("DBPreparedStatements = %v, want %v", c.DBPreparedStatements, tc.want)
			}
		})
	}
}
