package usage

import (
	"fmt"
	"math"
	"time"
)

// Effective date policies (Policies.EffectiveDate).
const (
	// EffectivePeriodStart dates a change on the first day of the billing
	// month the usage belongs to, so the whole month is billed at the new
	// quantity (billing in arrears).
	EffectivePeriodStart = "period_start"
	// EffectiveToday dates a change on the day of the pass (prorated).
	EffectiveToday = "today"
	// EffectiveNextPeriodStart dates a change on the first day of the next
	// billing month (billing in advance).
	EffectiveNextPeriodStart = "next_period_start"
)

// Missing usage policies (Policies.MissingUsage).
const (
	// MissingUsageZero sets a mapped line that has no usage this period to 0.
	MissingUsageZero = "zero"
	// MissingUsageKeep leaves a mapped line that has no usage this period as
	// it is.
	MissingUsageKeep = "keep"
)

// Usage period policies (Policies.UsagePeriod).
const (
	// UsagePeriodCurrent syncs the usage of the month that contains the
	// pass: a month's count is taken while it runs, and the pass on its last
	// day sets the month's quantity.
	UsagePeriodCurrent = "current"
	// UsagePeriodPrevious syncs the usage of the month before the pass, for
	// vendors that publish a month's usage only once it has ended (Sophos
	// answers "no data" for a month whose report is not ready).
	UsagePeriodPrevious = "previous"
)

// Unmapped decrease policies (Policies.UnmappedDecreases).
const (
	// UnmappedDecreasesHold holds, for review, every decrease of a
	// customer with usage of a product without a product mapping.
	UnmappedDecreasesHold = "hold"
	// UnmappedDecreasesBySize holds such a decrease only when
	// max_decrease_percent holds it, as any other.
	UnmappedDecreasesBySize = "by_size"
)

// Policies decide how a pass turns usage into quantities.
type Policies struct {
	// UsagePeriod is the month whose usage a pass syncs: current (default)
	// or previous. The billing period of the effective date policies is
	// that month.
	UsagePeriod string `yaml:"usage_period"`
	// EffectiveDate is period_start (default), today or next_period_start.
	EffectiveDate string `yaml:"effective_date"`
	// MissingUsage is what happens to a mapped line without usage this
	// period: zero (default) or keep.
	MissingUsage string `yaml:"missing_usage"`
	// MaxDecreasePercent holds decreases larger than this share of the
	// current quantity for review: plan shows them, sync --approve applies
	// them. 0 turns the guard off, and so does 100 (no decrease is larger:
	// Warnings says so); default 50.
	MaxDecreasePercent float64 `yaml:"max_decrease_percent"`
	// MaxIncreasePercent holds increases larger than this share of the
	// current quantity for review, as MaxDecreasePercent does decreases:
	// 200 holds a line whose new quantity is more than 3x the current one
	// (a vendor glitch that reports 40,000 seats for 40). Only a current
	// quantity above 0 is guarded: a new line is reviewed in the pull
	// request's billing-impact report. 0 (the default) turns the guard off.
	MaxIncreasePercent float64 `yaml:"max_increase_percent"`
	// SurgeLinesPercent holds, for review, the lines that surge (rise by
	// more than SurgeIncreasePercent of a current quantity above 0) when
	// more than this share of the lines above 0 surge at once, at least
	// SurgeMinLines of them: in the whole pass, or among the lines of one
	// PSA service. That is how a vendor that counts everything twice from
	// one day to the next (a bug, a changed report) looks, while a
	// customer's own growth moves a few lines. 0 turns the guard off;
	// default 50 (DefaultPolicies; an Engine given a Policies without it
	// has it off).
	SurgeLinesPercent float64 `yaml:"surge_lines_percent"`
	// SurgeIncreasePercent is how much a line rises, in percent of its
	// current quantity, to surge (see SurgeLinesPercent); default 50.
	SurgeIncreasePercent float64 `yaml:"surge_increase_percent"`
	// SurgeMinLines is how many lines at least surge before
	// SurgeLinesPercent holds them, so that the few lines of a small
	// service or of a pass for one customer do not; default 5.
	SurgeMinLines int `yaml:"surge_min_lines"`
	// UnmappedDecreases is what happens to a decrease of a customer that
	// has usage above 0 of a product without a product mapping (a vendor's
	// re-coded product bills nothing while the line it fed drops): hold
	// (default) holds it for review whatever its size, by_size only when
	// MaxDecreasePercent holds it. Neither holds with MaxDecreasePercent 0.
	UnmappedDecreases string `yaml:"unmapped_decreases"`
	// BudgetReserve stops writing when the PSA's remaining hourly request
	// budget falls to this; default 500.
	BudgetReserve int `yaml:"budget_reserve"`
	// TicketBudgetReserve stops psa-syncd's ticket passes' writes when the
	// PSA's remaining hourly request budget falls to this: above
	// BudgetReserve, so that a storm of alerts filed or cleared at once
	// leaves the usage passes of that hour the budget between the two. At
	// least BudgetReserve; 0 (the default) means BudgetReserve plus
	// DefaultTicketBudgetMargin (see TicketReserve).
	TicketBudgetReserve int `yaml:"ticket_budget_reserve"`
	// WriteConcurrency is how many writes the pass sends to the PSA at
	// once. 0 (the default) sends as many as the PSA client keeps in
	// flight (psa.max_concurrency: Autotask's thread limit of 3 per
	// endpoint, ConnectWise 8), or DefaultWriteConcurrency where the client
	// has no bound (Kaseya BMS). The intents of the next writes are
	// recorded ahead of them, so the senders never wait for the state
	// database: more senders than the client lets through would only hold
	// more intents open.
	WriteConcurrency int `yaml:"write_concurrency"`
	// SettleTime is how long a write whose answer never came back may
	// still reach the PSA: the request was sent, and the PSA may apply it
	// after the client gave up, after the process that sent it was killed,
	// or after the active instance lost its lock (before it learnt that).
	// An open intent whose line still shows the quantity from before is
	// closed as not applied (and its line written again) only this long
	// after the pass that opened it ended (one whose line shows another
	// quantity, changed by someone else meanwhile, waits as long before
	// it is closed for review), or after this instance marked
	// that pass interrupted; until then its line is not written, so a
	// late write and its retry never add up (an Autotask adjustment is a
	// delta). 0 closes it at once; default DefaultSettleTime.
	SettleTime time.Duration `yaml:"settle_time"`
	// TicketResolveAfter is how long the alert of an open ticket must be
	// missing from its tenant's complete listings of open alerts before
	// a ticket pass closes (or notes) the ticket: the first listing that
	// leaves it out only records when, and a listing at least this long
	// later that still does resolves it, so that an alert missing from one
	// listing (a glitch of the vendor's listing) keeps its ticket instead of
	// getting a second one when it is listed again. 0 resolves at the first
	// listing that leaves it out; default DefaultTicketResolveAfter.
	TicketResolveAfter time.Duration `yaml:"ticket_resolve_after"`
}

// DefaultTicketResolveAfter is Policies.TicketResolveAfter's default: two
// ticket passes of the default ticket_schedule (every 5m), so that an
// alert must be missing from at least two listings ten minutes apart.
const DefaultTicketResolveAfter = 10 * time.Minute

// maxTicketResolveAfter bounds Policies.TicketResolveAfter: the ticket of
// a resolved alert stays open for that long.
const maxTicketResolveAfter = 24 * time.Hour

// DefaultSettleTime is Policies.SettleTime's default: twice the PSA
// clients' request timeout (60 s), past which no write sent before can
// still be in flight.
const DefaultSettleTime = 2 * time.Minute

// maxSettleTime bounds Policies.SettleTime: a line whose write went
// unanswered is not written for that long.
const maxSettleTime = 24 * time.Hour

// DefaultPolicies are the policies used for every setting the config file
// leaves out.
var DefaultPolicies = Policies{
	UsagePeriod:          UsagePeriodCurrent,
	EffectiveDate:        EffectivePeriodStart,
	MissingUsage:         MissingUsageZero,
	MaxDecreasePercent:   50,
	SurgeLinesPercent:    50,
	SurgeIncreasePercent: 50,
	SurgeMinLines:        5,
	UnmappedDecreases:    UnmappedDecreasesHold,
	BudgetReserve:        500,
	SettleTime:           DefaultSettleTime,
	TicketResolveAfter:   DefaultTicketResolveAfter,
}

// DefaultTicketBudgetMargin is how many requests of the PSA's hourly
// budget the ticket passes leave to the usage passes above BudgetReserve
// when TicketBudgetReserve is left out: a month-end pass that writes a
// line per changed contract, for a couple of thousand contracts, whatever
// the ticket passes of that hour sent. Autotask allows 10,000 requests an
// hour: the ticket passes stop at 2,500 left by default.
const DefaultTicketBudgetMargin = 2000

// TicketReserve is the remaining hourly budget at which ticket passes stop
// writing: TicketBudgetReserve, or BudgetReserve plus
// DefaultTicketBudgetMargin when it is 0.
func (p *Policies) TicketReserve() int {
	if p.TicketBudgetReserve == 0 {
		return p.BudgetReserve + DefaultTicketBudgetMargin
	}
	return p.TicketBudgetReserve
}

// MaxWriteConcurrency bounds Policies.WriteConcurrency. A pass starts a
// sender per write in flight and makes room for three intents each ahead
// of them: a value far past any PSA's limit (a typo, an extra digit) would
// crash the process for want of memory at every pass, not at start-up.
const MaxWriteConcurrency = 100

// DefaultWriteConcurrency is the writes in flight when neither
// Policies.WriteConcurrency nor the PSA client bounds them (Kaseya BMS,
// which documents no limit).
const DefaultWriteConcurrency = 3

// Warnings returns what in p validates but does not do what it seems to,
// one sentence each naming the setting, or nil: psa-syncd logs them when
// it loads the config (at start and at each reload that changes it) and
// check shows them.
func (p *Policies) Warnings() []string {
	var w []string
	if p.MaxDecreasePercent == 100 {
		w = append(w, "policies.max_decrease_percent: 100 holds no decrease (none is larger than 100 percent), so the guard is off as with 0: "+
			"a vendor outage that drops a tenant's counts to zero is written; 99 holds a drop to zero, the default 50 a drop of more than half")
	}
	if p.SurgeLinesPercent == 100 {
		w = append(w, "policies.surge_lines_percent: 100 holds no surge (no share of the lines is larger than 100 percent), so the guard is off as with 0: "+
			"a vendor that counts every line twice is written; the default 50 holds the lines that surge when more than half do")
	}
	for _, g := range []struct {
		name string
		v    float64
	}{{"max_decrease_percent", p.MaxDecreasePercent}, {"max_increase_percent", p.MaxIncreasePercent},
		{"surge_lines_percent", p.SurgeLinesPercent}, {"surge_increase_percent", p.SurgeIncreasePercent}} {
		if g.v > 0 && g.v < 1 {
			w = append(w, fmt.Sprintf("policies.%s: %g is a percentage, not a fraction: it holds a change of more than %g percent, "+
				"nearly every one; for %g percent write %g", g.name, g.v, g.v, g.v*100, g.v*100))
		}
	}
	return w
}

// Validate checks p, as Load does, and names the setting that is wrong.
func (p *Policies) Validate() error {
	switch p.UsagePeriod {
	case UsagePeriodCurrent, UsagePeriodPrevious:
	default:
		return fmt.Errorf("policies.usage_period: unknown value %q (one of %s, %s)", p.UsagePeriod, UsagePeriodCurrent, UsagePeriodPrevious)
	}
	switch p.EffectiveDate {
	case EffectivePeriodStart, EffectiveToday, EffectiveNextPeriodStart:
	default:
		return fmt.Errorf("policies.effective_date: unknown value %q (one of %s, %s, %s)",
			p.EffectiveDate, EffectivePeriodStart, EffectiveToday, EffectiveNextPeriodStart)
	}
	switch p.MissingUsage {
	case MissingUsageZero, MissingUsageKeep:
	default:
		return fmt.Errorf("policies.missing_usage: unknown value %q (one of %s, %s)", p.MissingUsage, MissingUsageZero, MissingUsageKeep)
	}
	switch p.UnmappedDecreases {
	case UnmappedDecreasesHold, UnmappedDecreasesBySize:
	default:
		return fmt.Errorf("policies.unmapped_decreases: unknown value %q (one of %s, %s)", p.UnmappedDecreases, UnmappedDecreasesHold, UnmappedDecreasesBySize)
	}
	if !(p.MaxDecreasePercent >= 0 && p.MaxDecreasePercent <= 100) { // NaN too
		return fmt.Errorf("policies.max_decrease_percent: must be between 0 and 100, got %g", p.MaxDecreasePercent)
	}
	if !(p.MaxIncreasePercent >= 0) || math.IsInf(p.MaxIncreasePercent, 1) { // NaN too
		return fmt.Errorf("policies.max_increase_percent: must be 0 (off) or a positive percentage, got %g", p.MaxIncreasePercent)
	}
	if !(p.SurgeLinesPercent >= 0 && p.SurgeLinesPercent <= 100) { // NaN too
		return fmt.Errorf("policies.surge_lines_percent: must be between 0 (off) and 100, got %g", p.SurgeLinesPercent)
	}
	if !(p.SurgeIncreasePercent > 0) || math.IsInf(p.SurgeIncreasePercent, 1) { // NaN too
		return fmt.Errorf("policies.surge_increase_percent: must be a positive percentage (surge_lines_percent: 0 turns the guard off), got %g", p.SurgeIncreasePercent)
	}
	if p.SurgeMinLines < 1 {
		return fmt.Errorf("policies.surge_min_lines: must be at least 1 (surge_lines_percent: 0 turns the guard off), got %d", p.SurgeMinLines)
	}
	if p.BudgetReserve < 0 {
		return fmt.Errorf("policies.budget_reserve: must not be negative, got %d", p.BudgetReserve)
	}
	if p.TicketBudgetReserve != 0 && p.TicketBudgetReserve < p.BudgetReserve {
		return fmt.Errorf("policies.ticket_budget_reserve: must be at least policies.budget_reserve (%d), got %d: ticket passes would spend "+
			"the budget kept for the usage passes (0 or left out: %d more than budget_reserve)", p.BudgetReserve, p.TicketBudgetReserve, DefaultTicketBudgetMargin)
	}
	if p.WriteConcurrency < 0 {
		return fmt.Errorf("policies.write_concurrency: must not be negative, got %d", p.WriteConcurrency)
	}
	if p.WriteConcurrency > MaxWriteConcurrency {
		return fmt.Errorf("policies.write_concurrency: must be at most %d, got %d", MaxWriteConcurrency, p.WriteConcurrency)
	}
	if p.SettleTime < 0 || p.SettleTime > maxSettleTime {
		return fmt.Errorf("policies.settle_time: must be between 0 and %s, got %s", maxSettleTime, p.SettleTime)
	}
	if p.TicketResolveAfter < 0 || p.TicketResolveAfter > maxTicketResolveAfter {
		return fmt.Errorf("policies.ticket_resolve_after: must be between 0 and %s, got %s", maxTicketResolveAfter, p.TicketResolveAfter)
	}
	return nil
}
