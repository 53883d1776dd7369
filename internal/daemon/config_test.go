package daemon

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// loadConfig binds the flags, parses args and resolves the config file and environment,
// as every cairnd command does.
func loadConfig(args []string, env map[string]string) (Config, error) {
	c := defaultConfig()
	var file string
	fs := pflag.NewFlagSet("cairnd", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	bindFlags(fs, &c, &file)
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	err := resolve(fs, file, func(k string) string { return env[k] })
	return c, err
}

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "cairnd.json")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// The four kinds of field, as each layer sets them. The bool alternates so that every
// layer visibly overrides the one before.
type layerValues struct {
	listen   string
	noMig    bool
	maxBlob  int64
	interval time.Duration
}

var (
	fromDefault = layerValues{"127.0.0.1:8080", false, 1 << 30, time.Minute}
	fromFile    = layerValues{"file.example:1", true, 111, 2 * time.Minute}
	fromEnv     = layerValues{"env.example:2", false, 222, 3 * time.Minute}
	fromFlag    = layerValues{"flag.example:3", true, 333, 4 * time.Minute}
)

const fileBody = `{"listen": "file.example:1", "no_migrate": true, "max_blob_size": 111, "publish_interval": "2m"}`

var envVars = map[string]string{
	"CAIRN_LISTEN": "env.example:2", "CAIRN_NO_MIGRATE": "false", "CAIRN_MAX_BLOB_SIZE": "222", "CAIRN_PUBLISH_INTERVAL": "3m",
}

var flagArgs = []string{"--listen", "flag.example:3", "--no-migrate", "--max-blob-size", "333", "--publish-interval", "4m"}

func got(c Config) layerValues {
	return layerValues{c.Listen, c.NoMigrate, c.MaxBlobSize, c.PublishInterval}
}

func TestConfigPrecedence(t *testing.T) {
	file := writeConfig(t, fileBody)
	merge := func(ms ...map[string]string) map[string]string {
		out := map[string]string{}
		for _, m := range ms {
			for k, v := range m {
				out[k] = v
			}
		}
		return out
	}
	viaEnv := map[string]string{"CAIRN_CONFIG": file}
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want layerValues
	}{
		{"defaults", nil, nil, fromDefault},
		{"config file", []string{"--config", file}, nil, fromFile},
		{"config file named by CAIRN_CONFIG", nil, viaEnv, fromFile},
		{"environment over defaults", nil, envVars, fromEnv},
		{"environment over config file", []string{"--config", file}, envVars, fromEnv},
		{"environment over CAIRN_CONFIG file", nil, merge(viaEnv, envVars), fromEnv},
		{"flags over defaults", flagArgs, nil, fromFlag},
		{"flags over config file", append([]string{"--config", file}, flagArgs...), nil, fromFlag},
		{"flags over environment", flagArgs, envVars, fromFlag},
		{"flags over everything", append([]string{"--config=" + file}, flagArgs...), merge(viaEnv, envVars), fromFlag},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := loadConfig(tt.args, tt.env)
			if err != nil {
				t.Fatal(err)
			}
			if g := got(c); g != tt.want {
				t.Errorf("got %+v; want %+v", g, tt.want)
			}
		})
	}
}

// Each field is resolved on its own: a layer that says nothing about a field leaves it to
// the layers below.
func TestConfigPrecedencePerField(t *testing.T) {
	file := writeConfig(t, `{"listen": "file.example:1", "no_migrate": true, "max_blob_size": 111, "publish_interval": "2m"}`)
	c, err := loadConfig([]string{"--config", file, "--publish-interval", "4m"}, map[string]string{"CAIRN_MAX_BLOB_SIZE": "222", "CAIRN_LOG_LEVEL": "debug"})
	if err != nil {
		t.Fatal(err)
	}
	want := layerValues{"file.example:1", true, 222, 4 * time.Minute}
	if g := got(c); g != want {
		t.Errorf("got %+v; want %+v", g, want)
	}
	if c.LogLevel != "debug" || c.DatabaseURL != DefaultDatabaseURL {
		t.Errorf("log level %q, database URL %q", c.LogLevel, c.DatabaseURL)
	}

	// A flag set to its default value still wins over the file and the environment.
	c, err = loadConfig([]string{"--config", file, "--no-migrate=false", "--listen", "127.0.0.1:8080"}, map[string]string{"CAIRN_NO_MIGRATE": "true", "CAIRN_LISTEN": "env.example:2"})
	if err != nil {
		t.Fatal(err)
	}
	if c.NoMigrate || c.Listen != "127.0.0.1:8080" {
		t.Errorf("explicit default flags lost: no-migrate %v, listen %q", c.NoMigrate, c.Listen)
	}

	// Multi-word keys map to CAIRN_* with underscores and to config keys with underscores.
	file = writeConfig(t, `{"recently_claimed_key": "file:///k.json", "database_url": "postgres://db/x"}`)
	c, err = loadConfig([]string{"--config", file}, map[string]string{"CAIRN_TIMESTAMP_KEY": "file:///t.json", "CAIRN_BLOB_DIR": "/blobs"})
	if err != nil {
		t.Fatal(err)
	}
	if c.RecentlyClaimedKey != "file:///k.json" || c.DatabaseURL != "postgres://db/x" || c.TimestampKey != "file:///t.json" || c.BlobDir != "/blobs" {
		t.Errorf("config = %+v", c)
	}
}

func TestConfigFlagOverCAIRNCONFIG(t *testing.T) {
	a := writeConfig(t, `{"listen": "a.example:1"}`)
	b := writeConfig(t, `{"listen": "b.example:2"}`)
	c, err := loadConfig([]string{"--config", b}, map[string]string{"CAIRN_CONFIG": a})
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "b.example:2" {
		t.Errorf("--config did not win over CAIRN_CONFIG: listen %q", c.Listen)
	}
}

func TestConfigRefusals(t *testing.T) {
	tests := []struct {
		name string
		file string // config file body, if any
		args []string
		env  map[string]string
		want []string // every one must appear in the error
	}{
		{name: "unknown key", file: `{"listen": "x:1", "listne": "y:2"}`, want: []string{`unknown key "listne"`}},
		{name: "key spelled as the flag", file: `{"max-blob-size": 5}`, want: []string{`unknown key "max-blob-size"`}},
		{name: "not JSON", file: `listen: x`, want: []string{"parsing config file"}},
		{name: "key given twice", file: `{"listen": "127.0.0.1:1", "listen": "0.0.0.0:2"}`, want: []string{"parsing config file", `duplicate key "listen"`}},
		{name: "not an object", file: `["listen"]`, want: []string{"parsing config file"}},
		{name: "bad int64 in file", file: `{"max_blob_size": "lots"}`, want: []string{"max-blob-size"}},
		{name: "bad duration in file", file: `{"publish_interval": "soon"}`, want: []string{"publish-interval"}},
		{name: "duration without unit in file", file: `{"publish_interval": 60}`, want: []string{"publish-interval"}},
		{name: "bad bool in file", file: `{"no_publisher": "maybe"}`, want: []string{"no-publisher"}},
		{name: "bad int64 in env", env: map[string]string{"CAIRN_MAX_BLOB_SIZE": "1GB"}, want: []string{"max-blob-size"}},
		{name: "bad duration in env", env: map[string]string{"CAIRN_PUBLISH_INTERVAL": "often"}, want: []string{"publish-interval"}},
		{name: "bad bool in env", env: map[string]string{"CAIRN_DEV": "yes please"}, want: []string{"dev"}},
		{name: "bad int64 flag", args: []string{"--max-blob-size", "big"}, want: []string{"max-blob-size"}},
		{name: "bad duration flag", args: []string{"--publish-interval", "5"}, want: []string{"publish-interval"}},
		{name: "unknown flag", args: []string{"--listne", "x"}, want: []string{"listne"}},
		{name: "missing config file", args: []string{"--config", "/nonexistent/cairnd.json"}, want: []string{"reading config file", "/nonexistent/cairnd.json"}},
		{name: "missing CAIRN_CONFIG file", env: map[string]string{"CAIRN_CONFIG": "/nonexistent/env.json"}, want: []string{"reading config file", "/nonexistent/env.json"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.args
			if tt.file != "" {
				args = append([]string{"--config", writeConfig(t, tt.file)}, args...)
			}
			_, err := loadConfig(args, tt.env)
			if err == nil {
				t.Fatalf("accepted; want an error mentioning %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// The commands resolve the configuration the same way: through withConfig, --config and
// CAIRN_CONFIG reach the command, and bad configuration stops it before it runs.
func TestConfigThroughCommand(t *testing.T) {
	file := writeConfig(t, fileBody)
	run := func(args []string, env map[string]string) (*Config, error) {
		var seen *Config
		cmd := withConfig(&cobra.Command{Use: "x", SilenceUsage: true, SilenceErrors: true}, func(k string) string { return env[k] },
			func(_ context.Context, c *Config) error { seen = c; return nil })
		cmd.SetArgs(args)
		cmd.SetOut(io.Discard)
		cmd.SetErr(io.Discard)
		return seen, cmd.ExecuteContext(context.Background())
	}
	for _, tc := range []struct {
		args []string
		env  map[string]string
	}{{[]string{"--config", file}, nil}, {nil, map[string]string{"CAIRN_CONFIG": file}}} {
		c, err := run(tc.args, tc.env)
		if err != nil {
			t.Fatal(err)
		}
		if g := got(*c); g != fromFile {
			t.Errorf("args %v env %v: got %+v; want %+v", tc.args, tc.env, g, fromFile)
		}
	}
	c, err := run([]string{"--config", file, "--max-blob-size", "333"}, envVars)
	if err != nil {
		t.Fatal(err)
	}
	if want := (layerValues{"env.example:2", false, 333, 3 * time.Minute}); got(*c) != want {
		t.Errorf("got %+v; want %+v", got(*c), want)
	}
	if c, err := run([]string{"--config", writeConfig(t, `{"bogus": 1}`)}, nil); err == nil || c != nil {
		t.Errorf("unknown key: ran with %+v, err %v", c, err)
	}

	// And through Main: a bad value stops cairnd with a message naming the flag.
	var stderr strings.Builder
	code := Main(context.Background(), []string{"migrate"}, io.Discard, &stderr, func(k string) string {
		return map[string]string{"CAIRN_PUBLISH_INTERVAL": "whenever"}[k]
	})
	if code == 0 || !strings.Contains(stderr.String(), "publish-interval") {
		t.Errorf("cairnd migrate with a bad CAIRN_PUBLISH_INTERVAL: exit %d, stderr %q", code, stderr.String())
	}
}

// Every Config field is a flag and a config-file key of the same name, and the limits of
// issue #9 reach the Config from each layer.
func TestConfigFieldsAreFlags(t *testing.T) {
	c := defaultConfig()
	var file string
	fs := pflag.NewFlagSet("cairnd", pflag.ContinueOnError)
	bindFlags(fs, &c, &file)
	rt := reflect.TypeOf(c)
	for i := range rt.NumField() {
		key := rt.Field(i).Tag.Get("json")
		if fs.Lookup(strings.ReplaceAll(key, "_", "-")) == nil {
			t.Errorf("Config.%s (config key %q) has no flag --%s", rt.Field(i).Name, key, strings.ReplaceAll(key, "_", "-"))
		}
	}
	f := writeConfig(t, `{"header_read_timeout": "3s", "body_read_timeout": "7s", "min_upload_rate": 1000, "max_connections": 50, "max_inflight": 20, "dev_allow_public": true}`)
	got, err := loadConfig([]string{"--config", f, "--max-inflight", "30"}, map[string]string{"CAIRN_MIN_UPLOAD_RATE": "2000"})
	if err != nil {
		t.Fatal(err)
	}
	if got.HeaderReadTimeout != 3*time.Second || got.BodyReadTimeout != 7*time.Second || got.MinUploadRate != 2000 || got.MaxConnections != 50 || got.MaxInflight != 30 || !got.DevAllowPublic {
		t.Errorf("limits from file, environment and flags: %+v", got)
	}
	d, err := loadConfig(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if d.HeaderReadTimeout != 10*time.Second || d.BodyReadTimeout != 30*time.Second || d.MinUploadRate != 4096 || d.MaxConnections != 0 || d.MaxInflight != 512 || d.DevAllowPublic {
		t.Errorf("default limits: %+v", d)
	}
}

// --static-dir is set like every other field: config file key static_dir, CAIRN_STATIC_DIR,
// the flag; off (empty) by default.
func TestConfigStaticDir(t *testing.T) {
	file := writeConfig(t, `{"static_dir": "/srv/file"}`)
	for _, tt := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"default", nil, nil, ""},
		{"config file", []string{"--config", file}, nil, "/srv/file"},
		{"environment", []string{"--config", file}, map[string]string{"CAIRN_STATIC_DIR": "/srv/env"}, "/srv/env"},
		{"flag", []string{"--config", file, "--static-dir", "/srv/flag"}, map[string]string{"CAIRN_STATIC_DIR": "/srv/env"}, "/srv/flag"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := loadConfig(tt.args, tt.env)
			if err != nil {
				t.Fatal(err)
			}
			if c.StaticDir != tt.want {
				t.Errorf("static dir %q, want %q", c.StaticDir, tt.want)
			}
		})
	}
}
