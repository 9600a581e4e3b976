package testutil

import (
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Metrics is a parsed Prometheus text exposition.
type Metrics struct {
	Families map[string]*dto.MetricFamily
	Raw      string
}

// ParseMetrics parses the text format (0.0.4), as Prometheus would.
func ParseMetrics(text string) (Metrics, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(text))
	return Metrics{Families: families, Raw: text}, err
}

// Scrape GETs url with client (nil: http.DefaultClient) asking for the text
// format and parses it.
func Scrape(client *http.Client, url string) (Metrics, error) {
	if client == nil {
		client = http.DefaultClient
	}
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return Metrics{}, err
	}
	req.Header.Set("Accept", "text/plain; version=0.0.4")
	resp, err := client.Do(req)
	if err != nil {
		return Metrics{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return Metrics{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return Metrics{}, fmt.Errorf("GET %s: %d %q", url, resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		return Metrics{}, fmt.Errorf("GET %s: Content-Type %q", url, ct)
	}
	return ParseMetrics(string(body))
}

// Value is the value of the series of family name with exactly these labels
// (a counter's or gauge's value, a histogram's sample count); false when
// there is no such series.
func (m Metrics) Value(name string, labels map[string]string) (float64, bool) {
	family := m.Families[name]
	if family == nil {
		return 0, false
	}
	for _, metric := range family.GetMetric() {
		if !sameLabels(metric.GetLabel(), labels) {
			continue
		}
		switch {
		case metric.Counter != nil:
			return metric.GetCounter().GetValue(), true
		case metric.Gauge != nil:
			return metric.GetGauge().GetValue(), true
		case metric.Histogram != nil:
			return float64(metric.GetHistogram().GetSampleCount()), true
		case metric.Untyped != nil:
			return metric.GetUntyped().GetValue(), true
		}
	}
	return 0, false
}

// LabelSets lists the label sets of family name, each as k=v,... sorted.
func (m Metrics) LabelSets(name string) []string {
	var out []string
	for _, metric := range m.Families[name].GetMetric() {
		var pairs []string
		for _, l := range metric.GetLabel() {
			pairs = append(pairs, l.GetName()+"="+l.GetValue())
		}
		sort.Strings(pairs)
		out = append(out, strings.Join(pairs, ","))
	}
	sort.Strings(out)
	return out
}

func sameLabels(got []*dto.LabelPair, want map[string]string) bool {
	if len(got) != len(want) {
		return false
	}
	for _, l := range got {
		if v, ok := want[l.GetName()]; !ok || v != l.GetValue() {
			return false
		}
	}
	return true
}
