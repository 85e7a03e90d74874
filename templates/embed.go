// Package templates holds Varsel's default message templates, embedded in
// the binary. A directory named by VARSEL_TEMPLATES_DIR overrides them file
// by file: a file there with the same name replaces the embedded one, and
// any other *.tmpl file there is added.
//
// Files ending in .html.tmpl are parsed with html/template, so incident text
// is escaped; every other file with text/template. common.tmpl is parsed into
// both sets. Every fixed phrase comes from the go-i18n catalogues in
// locales/ through the t (message id, key/value pairs) and tn (message id,
// count, key/value pairs) functions.
//
// notifier/render executes, for an event of type T (e.g. incident.opened)
// and a kind K ("incident", which includes maintenance, or "letter"), the
// first template that exists of NAME.T and NAME.K:
//
//	subject.T                         email subject (text)
//	email.txt.T | email.txt.K         email text body, cached per event
//	email.html.T | email.html.K       email HTML body, cached per event
//	sms.T | sms.K                     SMS body (one 160-character GSM-7 segment)
//	webhook.T | webhook.K             the webhook payload's text field
//
// and, per subscriber, the small personal parts: email.txt.greeting,
// email.txt.footer, email.html.head, email.html.greeting, email.html.footer
// and email.html.end. Keeping the personal parts apart is what lets a
// message be rendered once per (event, locale, channel, time zone) and only
// personalized per subscriber.
//
// Notices, the emails Varsel sends about a subscription rather than an
// incident, live in notice.tmpl and notice.html.tmpl: for a notice N (e.g.
// notice.webhook_disabled) subject.N, email.txt.N and email.html.N, wrapped
// in the same head, greeting, footer and end as every email.
package templates

import "embed"

// FS holds the default *.tmpl files.
//
//go:embed *.tmpl
var FS embed.FS

// ConsoleFS holds the staff console's pages (console/*.html, html/template,
// every fixed phrase from the catalogues) and its static files
// (console/static: the style sheet and the progress view's script).
//
//go:embed console/*.html console/static/*
var ConsoleFS embed.FS
