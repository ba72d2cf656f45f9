// Package kubectli18n keeps kubectl's translations from loading in every
// hepto process. kubectl's command packages translate their help text in
// package initialisers, and the first translation unpacks a catalogue
// (about 20 ms and 4 MB, in `hepto version` too). In English, the
// catalogue's text is the text itself, so it is loaded only for another
// language.
//
// Imported for its initialiser: it must run before the initialisers of
// kubectl's command packages, which Go's order of initialisation (by
// import path, among packages whose imports are initialised) ensures, as
// long as this package imports nothing else of kubectl's.
package kubectli18n

import (
	"os"
	"strings"

	"k8s.io/kubectl/pkg/util/i18n"
)

func init() {
	if err := i18n.SetLoadTranslationsFunc(load); err != nil {
		panic(err)
	}
}

func load() error {
	if english(locale()) {
		return nil
	}
	return i18n.LoadTranslations("kubectl", nil)
}

// locale is the messages' locale, in kubectl's order: LC_ALL,
// LC_MESSAGES, LANG.
func locale() string {
	for _, v := range []string{"LC_ALL", "LC_MESSAGES", "LANG"} {
		if s := os.Getenv(v); s != "" {
			return s
		}
	}
	return ""
}

// english tells whether the locale l is one for which kubectl uses an
// English catalogue: none, C, POSIX, en_*, or not LANG.ENCODING.
func english(l string) bool {
	parts := strings.Split(l, ".")
	if len(parts) != 2 {
		return true
	}
	lang := parts[0]
	return lang == "C" || lang == "POSIX" || lang == "en" || strings.HasPrefix(lang, "en_")
}
