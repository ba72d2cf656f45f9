package kubectli18n

import "testing"

func TestEnglish(t *testing.T) {
	for l, want := range map[string]bool{
		"": true, "C": true, "C.UTF-8": true, "POSIX": true, "en_US.UTF-8": true, "en_GB.UTF-8": true,
		"fr_FR":       true, // kubectl wants LANG.ENCODING
		"fr_FR.UTF-8": false, "ja_JP.UTF-8": false, "de_DE.ISO-8859-1": false,
	} {
		if got := english(l); got != want {
			t.Errorf("english(%q) = %v, want %v", l, got, want)
		}
	}
}
