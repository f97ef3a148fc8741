package main

// Word lists for names, titles and descriptions. Titles combine a verb, an object and a number
// ("Fix login redirect #123"), so full-text search has realistic, repeating vocabulary.

var (
	firstNames = []string{"Ada", "Grace", "Alan", "Linus", "Barbara", "Ken", "Margaret", "Dennis",
		"Frances", "Edsger", "Radia", "Donald", "Hedy", "John", "Katherine", "Tim"}
	lastNames = []string{"Lovelace", "Hopper", "Turing", "Torvalds", "Liskov", "Thompson", "Hamilton",
		"Ritchie", "Allen", "Dijkstra", "Perlman", "Knuth", "Lamarr", "Backus", "Johnson", "Berners-Lee"}
	companyAdjectives = []string{"Blue", "Bright", "Quiet", "Rapid", "Northern", "Golden", "Silver",
		"Clever", "Open", "Steady", "Little", "Grand"}
	companyNouns = []string{"Harbor", "Labs", "Works", "Systems", "Foundry", "Studio", "Logistics",
		"Analytics", "Health", "Robotics", "Finance", "Media"}

	teamNames = []struct{ name, key string }{
		{"Engineering", "ENG"}, {"Design", "DES"}, {"Operations", "OPS"}, {"Marketing", "MKT"},
		{"Support", "SUP"}, {"Platform", "PLAT"}, {"Mobile", "MOB"}, {"Data", "DATA"},
	}
	projectNames = []struct{ name, key string }{
		{"Website", "WEB"}, {"Public API", "API"}, {"Mobile app", "APP"}, {"Infrastructure", "INFRA"},
		{"Billing", "BILL"}, {"Onboarding", "ONB"}, {"Security review", "SEC"}, {"Data pipeline", "PIPE"},
		{"Design system", "DSYS"}, {"Growth", "GROW"}, {"Customer portal", "PORTAL"}, {"Search", "SRCH"},
	}

	verbs   = []string{"Fix", "Add", "Refactor", "Update", "Remove", "Investigate", "Document", "Improve", "Migrate", "Test", "Speed up", "Redesign"}
	objects = []string{"login redirect", "password reset email", "billing page", "search index", "invoice export",
		"dark mode", "CSV import", "webhook retries", "onboarding checklist", "audit log", "rate limiter",
		"notification settings", "file uploads", "team invitations", "dashboard charts", "mobile layout",
		"API pagination", "SSO configuration", "session timeout", "error messages", "release notes",
		"database migration", "cache invalidation", "timezone handling", "keyboard shortcuts", "project archive"}
	symptoms = []string{"fails intermittently", "is slow", "shows the wrong data", "breaks on Safari",
		"times out under load", "confuses new users", "is missing translations", "logs too much",
		"ignores the user's settings", "returns a 500"}
	conditions = []string{"the session has expired", "the account has many projects", "a file is larger than 10 MB",
		"two people edit at once", "the network is slow", "SSO is enabled", "the tenant is on the free plan",
		"the browser language is not English"}
	followUps = []string{"Steps to reproduce are in the linked thread.", "Customers have asked for this twice this month.",
		"Needs a design review before we start.", "Should be covered by an integration test.",
		"Low risk, but touches the billing code.", "Blocked until the migration has shipped.",
		"Pair with support to confirm the fix.", ""}

	labelNames = []string{"bug", "feature", "frontend", "backend", "infra", "docs", "security",
		"performance", "ux", "tech-debt"}

	statusesByWeight   = []weighted{{"backlog", 20}, {"todo", 20}, {"in_progress", 15}, {"done", 35}, {"canceled", 10}}
	plansByWeight      = []weighted{{"free", 60}, {"pro", 30}, {"enterprise", 10}}
	rolesByWeight      = []weighted{{"admin", 15}, {"member", 70}, {"viewer", 15}}
	prioritiesByWeight = []int{30, 15, 25, 20, 10} // none, low, medium, high, urgent
)
