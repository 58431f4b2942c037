// helm-template renders a Helm chart the way `helm template` does, for the offline validation of
// deploy/helm/faultline (tests/deploy/validate.sh): no helm release can be installed here.
//
// It is Helm's rendering engine rebuilt on the same parts, from Debian's packages: Go's
// text/template, Sprig 3.2.3's function map (the version Helm 3.12 to 3.15 ship) without env and
// expandenv, and sigs.k8s.io/yaml for values and toYaml. On top, as Helm's pkg/engine defines
// them: include, tpl, required, toYaml, fromYaml, fromYamlArray, toJson, fromJson,
// fromJsonArray, lookup (empty, as in `helm template`), missingkey=zero with "<no value>"
// removed, partials (templates/_*) parsed but not emitted, NOTES.txt rendered apart, and the
// values coalesced as chartutil does (maps merged, scalars and lists replaced, null deletes a
// key). .Chart is the Chart.yaml metadata, .Release a table, .Capabilities a fixed Kubernetes
// version, .Files every chart file outside templates/ (Get, GetBytes, Lines).
//
// Left out, each an error if a chart uses it: toToml, subcharts (charts/), values.schema.json,
// Files.Glob/AsConfig/AsSecrets, --set. Usage:
//
//	helm-template [--name RELEASE] [--namespace NS] [--kube-version 1.30.0] [-f VALUES]... \
//	    [--notes-out FILE] CHART_DIR   # the manifests on stdout, each after "# Source: …"
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig" // v3.2.3: Debian lays it out without /v3 (GOPATH mode)
	"sigs.k8s.io/yaml"
)

type Maintainer struct{ Name, Email, URL string }

// Metadata is Chart.yaml, with the field names templates use (.Chart.Name, .Chart.AppVersion).
type Metadata struct {
	Name         string            `json:"name"`
	Home         string            `json:"home"`
	Sources      []string          `json:"sources"`
	Version      string            `json:"version"`
	Description  string            `json:"description"`
	Keywords     []string          `json:"keywords"`
	Maintainers  []*Maintainer     `json:"maintainers"`
	Icon         string            `json:"icon"`
	APIVersion   string            `json:"apiVersion"`
	AppVersion   string            `json:"appVersion"`
	KubeVersion  string            `json:"kubeVersion"`
	Type         string            `json:"type"`
	Annotations  map[string]string `json:"annotations"`
	Dependencies []interface{}     `json:"dependencies"`
}

type Files map[string][]byte

func (f Files) GetBytes(name string) []byte { return f[name] }
func (f Files) Get(name string) string      { return string(f[name]) }
func (f Files) Lines(name string) []string {
	if f[name] == nil {
		return []string{}
	}
	return strings.Split(string(f[name]), "\n")
}

type VersionSet []string

func (v VersionSet) Has(apiVersion string) bool {
	for _, x := range v {
		if x == apiVersion {
			return true
		}
	}
	return false
}

type KubeVersion struct{ Version, Major, Minor string }

func (k KubeVersion) String() string    { return k.Version }
func (k KubeVersion) GitVersion() string { return k.Version }

type Capabilities struct {
	KubeVersion KubeVersion
	APIVersions VersionSet
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func die(format string, a ...interface{}) {
	fmt.Fprintf(os.Stderr, "helm-template: "+format+"\n", a...)
	os.Exit(1)
}

func readYAMLMap(file string) map[string]interface{} {
	data, err := os.ReadFile(file)
	if err != nil {
		die("%v", err)
	}
	m := map[string]interface{}{}
	if err := yaml.Unmarshal(data, &m); err != nil {
		die("%s: %v", file, err)
	}
	return m
}

// coalesce merges the chart's defaults (src) under the user's values (dst), as chartutil does.
func coalesce(dst, src map[string]interface{}) map[string]interface{} {
	for key, val := range src {
		dv, ok := dst[key]
		switch {
		case ok && dv == nil:
			delete(dst, key)
		case !ok:
			dst[key] = val
		default:
			dm, dIsMap := dv.(map[string]interface{})
			sm, sIsMap := val.(map[string]interface{})
			if dIsMap && sIsMap {
				coalesce(dm, sm)
			}
		}
	}
	return dst
}

func main() {
	release := flag.String("name", "faultline", "release name")
	namespace := flag.String("namespace", "default", "release namespace")
	kubeVersion := flag.String("kube-version", "1.30.0", "Kubernetes version for .Capabilities")
	notesOut := flag.String("notes-out", "", "write the rendered NOTES.txt here")
	var valueFiles multiFlag
	flag.Var(&valueFiles, "f", "values file (repeatable; later ones win)")
	flag.Parse()
	if flag.NArg() != 1 {
		die("usage: helm-template [flags] CHART_DIR")
	}
	chartDir := flag.Arg(0)

	var meta Metadata
	if data, err := os.ReadFile(filepath.Join(chartDir, "Chart.yaml")); err != nil {
		die("%v", err)
	} else if err := yaml.UnmarshalStrict(data, &meta); err != nil {
		die("Chart.yaml: %v", err)
	}
	if meta.APIVersion != "v2" || meta.Name == "" || meta.Version == "" {
		die("Chart.yaml: apiVersion v2, name and version are required")
	}
	if len(meta.Dependencies) > 0 {
		die("Chart.yaml: dependencies are not supported by this renderer")
	}

	templates := map[string]string{} // name as Helm gives it: CHART/templates/FILE
	files := Files{}
	err := filepath.Walk(chartDir, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(chartDir, p)
		rel = filepath.ToSlash(rel)
		if info.IsDir() {
			if rel == "charts" {
				return errors.New("charts/: subcharts are not supported by this renderer")
			}
			return nil
		}
		data, err := os.ReadFile(p) // follows symbolic links, as Helm's loader does
		if err != nil {
			return err
		}
		switch {
		case strings.HasPrefix(rel, "templates/"):
			templates[path.Join(meta.Name, rel)] = string(data)
		case rel == "values.schema.json":
			return errors.New("values.schema.json is not supported by this renderer")
		case rel != "Chart.yaml" && rel != "values.yaml" && rel != ".helmignore":
			files[rel] = data
		}
		return nil
	})
	if err != nil {
		die("%v", err)
	}

	user := map[string]interface{}{}
	for _, f := range valueFiles {
		user = coalesce(readYAMLMap(f), user)
	}
	values := coalesce(user, readYAMLMap(filepath.Join(chartDir, "values.yaml")))

	v := strings.SplitN(strings.TrimPrefix(*kubeVersion, "v"), ".", 3)
	if len(v) < 2 {
		die("--kube-version: MAJOR.MINOR[.PATCH]")
	}
	top := map[string]interface{}{
		"Values": values,
		"Chart":  &meta,
		"Files":  files,
		"Release": map[string]interface{}{
			"Name": *release, "Namespace": *namespace, "Revision": 1,
			"IsInstall": true, "IsUpgrade": false, "Service": "Helm",
		},
		"Capabilities": &Capabilities{
			KubeVersion: KubeVersion{Version: "v" + strings.Join(v, "."), Major: v[0], Minor: v[1]},
			APIVersions: VersionSet{"v1", "apps/v1", "rbac.authorization.k8s.io/v1", "policy/v1"},
		},
	}

	t := template.New("gotpl").Option("missingkey=zero")
	funcs := sprig.TxtFuncMap()
	delete(funcs, "env")
	delete(funcs, "expandenv")
	depth := map[string]int{}
	funcs["include"] = func(name string, data interface{}) (string, error) {
		if depth[name] > 1000 {
			return "", fmt.Errorf("rendering template has a nested reference name: %s", name)
		}
		depth[name]++
		defer func() { depth[name]-- }()
		var b strings.Builder
		err := t.ExecuteTemplate(&b, name, data)
		return b.String(), err
	}
	funcs["tpl"] = func(text string, data interface{}) (string, error) {
		c, err := t.Clone()
		if err != nil {
			return "", err
		}
		if _, err := c.New("tpl").Parse(text); err != nil {
			return "", err
		}
		var b strings.Builder
		err = c.ExecuteTemplate(&b, "tpl", data)
		return strings.ReplaceAll(b.String(), "<no value>", ""), err
	}
	funcs["required"] = func(msg string, val interface{}) (interface{}, error) {
		if s, ok := val.(string); val == nil || (ok && s == "") {
			return val, errors.New(msg)
		}
		return val, nil
	}
	funcs["toYaml"] = func(v interface{}) string {
		data, err := yaml.Marshal(v)
		if err != nil {
			return ""
		}
		return strings.TrimSuffix(string(data), "\n")
	}
	funcs["fromYaml"] = func(s string) map[string]interface{} {
		m := map[string]interface{}{}
		if err := yaml.Unmarshal([]byte(s), &m); err != nil {
			m["Error"] = err.Error()
		}
		return m
	}
	funcs["fromYamlArray"] = func(s string) []interface{} {
		a := []interface{}{}
		if err := yaml.Unmarshal([]byte(s), &a); err != nil {
			a = []interface{}{err.Error()}
		}
		return a
	}
	funcs["toJson"] = func(v interface{}) string {
		data, err := json.Marshal(v)
		if err != nil {
			return ""
		}
		return string(data)
	}
	funcs["fromJson"] = func(s string) map[string]interface{} {
		m := map[string]interface{}{}
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			m["Error"] = err.Error()
		}
		return m
	}
	funcs["fromJsonArray"] = func(s string) []interface{} {
		a := []interface{}{}
		if err := json.Unmarshal([]byte(s), &a); err != nil {
			a = []interface{}{err.Error()}
		}
		return a
	}
	funcs["lookup"] = func(string, string, string, string) (map[string]interface{}, error) {
		return map[string]interface{}{}, nil
	}
	t.Funcs(funcs)

	names := make([]string, 0, len(templates))
	for name := range templates {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if _, err := t.New(name).Parse(templates[name]); err != nil {
			die("parse error: %v", err)
		}
	}
	for _, name := range names {
		base := path.Base(name)
		if strings.HasPrefix(base, "_") {
			continue
		}
		top["Template"] = map[string]interface{}{"Name": name, "BasePath": path.Join(meta.Name, "templates")}
		var b strings.Builder
		if err := t.ExecuteTemplate(&b, name, top); err != nil {
			die("execution error: %v", err)
		}
		out := strings.ReplaceAll(b.String(), "<no value>", "")
		if base == "NOTES.txt" {
			if *notesOut != "" {
				if err := os.WriteFile(*notesOut, []byte(out), 0o644); err != nil {
					die("%v", err)
				}
			}
			continue
		}
		if strings.TrimSpace(out) == "" {
			continue
		}
		fmt.Printf("---\n# Source: %s\n%s\n", name, strings.TrimRight(out, "\n"))
	}
}
