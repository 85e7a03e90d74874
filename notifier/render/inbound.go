package render

// SMSReply is the text of messageID, an answer to an inbound SMS keyword
// (channels/sms.TextHelp, TextStopped, TextStarted), for a subscriber of
// locale ("" or one Varsel does not speak: the default), and the language
// it is in, "en" or "nb". Name in the text is the site's name in that
// language, empty without a site file.
func (r *Renderer) SMSReply(locale, messageID string) (text, lang string) {
	lang = ResolveLocale(locale, r.defaultLocale)
	return r.T(lang, messageID, map[string]any{"Name": r.cfg.Site.SiteName(lang)}), lang
}
