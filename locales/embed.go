// Package locales holds Varsel's message catalogues for go-i18n v2: every
// fixed phrase of every message and of the status page, in English
// (active.en.toml) and Norwegian Bokmål (active.nb.toml).
//
// Both files must hold the same message ids; notifier/render tests that they
// do and that no Norwegian entry is a copy of the English one.
package locales

import "embed"

// FS holds active.en.toml and active.nb.toml.
//
//go:embed active.*.toml
var FS embed.FS
