package web

import (
	"context"
	"net/http"
	"net/url"
	"strings"
)

// Links on a page keep the reader where they are: in their language, in
// the zone they asked for (?tz=), and, in the static mirror, inside the
// mirror. The live site links absolute URLs under VARSEL_PUBLIC_URL; the
// mirror links relative paths to its files, so it works from file://, any
// static server or an object store with Varsel down.
//
// The mirror's layout, one directory per language:
//
//	index.html                 the front page in the default language
//	en/index.html, nb/index.html
//	en/incidents/ID.html, nb/incidents/ID.html
//	en/letters/ID.html, nb/letters/ID.html
//	en/feed.atom, nb/feed.atom
//	api/v1/status.json, static/status.css, 404.html

// mirrorPage marks a request rendered for the static mirror: base is the
// path from the page's file to the mirror's root ("", "../", "../../"),
// file its path under the language directory ("index.html"); both marks
// the root's 404.html, which a static host serves for every missing path
// whatever the reader's language, so it says so in both.
type mirrorPage struct {
	base, file string
	both       bool
}

type mirrorKey struct{}

func withMirror(ctx context.Context, m mirrorPage) context.Context {
	return context.WithValue(ctx, mirrorKey{}, m)
}

func mirrorOf(r *http.Request) (mirrorPage, bool) {
	m, ok := r.Context().Value(mirrorKey{}).(mirrorPage)
	return m, ok
}

// links is the part of a reader that makes its links.
type links struct {
	publicURL string
	mirror    *mirrorPage
	// path and keep are this page's path and the query parameters to keep
	// when switching language (all but lang).
	path string
	keep url.Values
	// zone is the ?tz= the reader asked for, carried on; "" when none.
	zone string
}

func (s *server) linksFor(r *http.Request) links {
	l := links{publicURL: s.cfg.PublicURL, path: r.URL.Path, keep: url.Values{}}
	if m, ok := mirrorOf(r); ok {
		l.mirror = &m
		return l
	}
	for k, v := range r.URL.Query() {
		if k != "lang" {
			l.keep[k] = v
		}
	}
	l.zone = l.keep.Get("tz")
	return l
}

// query is "?lang=…[&tz=…]".
func (l links) query(lang string) string {
	q := url.Values{"lang": {lang}}
	if l.zone != "" {
		q.Set("tz", l.zone)
	}
	return "?" + q.Encode()
}

// to is a page of the site in lang: path is its live path ("/",
// "/incidents/ID"), file its mirror file under the language directory.
func (l links) to(lang, path, file string) string {
	if l.mirror != nil {
		return l.mirror.base + lang + "/" + file
	}
	return l.publicURL + path + l.query(lang)
}

// HomeURL is the front page.
func (rd reader) HomeURL() string { return rd.links.to(rd.Locale, "/", "index.html") }

// IncidentURL is an incident's page.
func (rd reader) IncidentURL(id string) string {
	return rd.links.to(rd.Locale, "/incidents/"+url.PathEscape(id), "incidents/"+id+".html")
}

// LetterURL is a letter's page.
func (rd reader) LetterURL(id string) string {
	return rd.links.to(rd.Locale, "/letters/"+url.PathEscape(id), "letters/"+id+".html")
}

// FeedURL is the reader's language's Atom feed.
func (rd reader) FeedURL() string {
	if rd.links.mirror != nil {
		return rd.links.mirror.base + rd.Locale + "/feed.atom"
	}
	return rd.links.publicURL + "/feed.atom?lang=" + rd.Locale
}

// StaticURL is a file of pages/static.
func (rd reader) StaticURL(name string) string {
	if rd.links.mirror != nil {
		return rd.links.mirror.base + "static/" + name
	}
	return "/static/" + name
}

// SubscribeURL is the sign-up page; "" in the mirror, which cannot take
// a sign-up (the page then names the live address as text).
func (rd reader) SubscribeURL() string {
	if rd.links.mirror != nil {
		return ""
	}
	return rd.links.publicURL + "/subscribe" + rd.links.query(rd.Locale)
}

// LiveURL is the live site's address, for the mirror's text.
func (rd reader) LiveURL() string { return rd.links.publicURL }

// SwitchURL is this same page in lang.
func (rd reader) SwitchURL(lang string) string {
	if m := rd.links.mirror; m != nil {
		return m.base + lang + "/" + m.file
	}
	q := url.Values{}
	for k, v := range rd.links.keep {
		q[k] = v
	}
	q.Set("lang", lang)
	return rd.links.publicURL + rd.links.path + "?" + q.Encode()
}

// Mirror reports whether the page is rendered for the static mirror.
func (rd reader) Mirror() bool { return rd.links.mirror != nil }

// SiteName is the site's name in the reader's language, or the page
// title phrase without a site file.
func (rd reader) SiteName() string {
	if name := rd.site.SiteName(rd.Locale); name != "" {
		return name
	}
	return rd.T("PageTitle")
}

// ComponentName is a component's name in the reader's language.
func (rd reader) ComponentName(id string) string { return rd.site.ComponentName(id, rd.Locale) }

// ComponentNames joins the names of ids; "" for none.
func (rd reader) ComponentNames(ids []string) string {
	names := make([]string, len(ids))
	for i, id := range ids {
		names[i] = rd.ComponentName(id)
	}
	return strings.Join(names, ", ")
}
