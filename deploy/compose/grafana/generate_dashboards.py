#!/usr/bin/env python3
"""Writes the Grafana dashboards of mixserve (dashboards/*.json) from the panel lists below.

The JSON files are committed; edit this file and run it again to change them:
    python3 deploy/compose/grafana/generate_dashboards.py
tests/deploy/check_deploy.py checks that the committed JSON is what this script writes, that
every metric and label in the queries is one the server defines (server/metrics.cc), and
evaluates the corpus BLEU query with promtool against sacreBLEU reference values.
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DS = {"type": "prometheus", "uid": "${datasource}"}

# Label filters of the dashboard variables.
SERVE = 'instance=~"$instance", model=~"$model"'
AB = ('instance=~"$instance", source_language=~"$source_language", '
      'target_language=~"$target_language"')
VARIANT = "model, version"
PAIR_VARIANT = "model, version, source_language, target_language"


def bleu_expr(prefix, labels, window, by):
    """Corpus BLEU (0-100) from the sufficient-statistic counters over `window`:
        BLEU = 100 * BP * exp(mean over n = 1..4 of ln(matching_n / hypothesis_n))
        BP   = min(1, exp(1 - reference_length / hypothesis_length))
    The mean over n is `avg by` across the `order` label (the server always exports the four
    orders of a variant). increase() scales every series of a variant alike, so the ratios
    are those of the raw counts."""
    def inc(name):
        return "increase(%s_%s{%s}[%s])" % (prefix, name, labels, window)
    return (
        "100\n"
        "* clamp_max(exp(1 - (\n"
        "    sum by (%(by)s) (%(ref)s)\n"
        "  / sum by (%(by)s) (%(hyp)s))), 1)\n"
        "* exp(avg by (%(by)s) (ln(\n"
        "    sum by (%(by)s, order) (%(match)s)\n"
        "  / sum by (%(by)s, order) (%(total)s))))"
    ) % {
        "by": by,
        "ref": inc("reference_length_total"),
        "hyp": inc("hypothesis_length_total"),
        "match": inc("matching_ngrams_total"),
        "total": inc("hypothesis_ngrams_total"),
    }


class Board:
    def __init__(self, uid, title, description, variables):
        self.uid, self.title, self.description = uid, title, description
        self.variables = variables
        self.panels = []
        self.x = 0
        self.y = 0
        self.row_h = 0

    def row(self, title):
        self._newline()
        self.panels.append({"type": "row", "title": title, "collapsed": False, "panels": [],
                            "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y}})
        self.y += 1

    def _newline(self):
        if self.x > 0:
            self.y += self.row_h
            self.x = 0
            self.row_h = 0

    def panel(self, kind, title, targets, unit="short", w=12, h=8, description="",
              options=None, field=None, transformations=None, overrides=None):
        if self.x + w > 24:
            self._newline()
        defaults = {"unit": unit}
        defaults.update(field or {})
        p = {
            "type": kind,
            "title": title,
            "description": description,
            "datasource": DS,
            "gridPos": {"h": h, "w": w, "x": self.x, "y": self.y},
            "targets": [],
            "fieldConfig": {"defaults": defaults, "overrides": overrides or []},
            "options": options or {},
        }
        for i, t in enumerate(targets):
            target = {"refId": chr(ord("A") + i), "datasource": DS, "expr": t["expr"],
                      "legendFormat": t.get("legend", "__auto")}
            if t.get("instant"):
                target.update({"instant": True, "range": False, "format": t.get("format", "time_series")})
            elif t.get("format"):
                target["format"] = t["format"]
            p["targets"].append(target)
        if transformations:
            p["transformations"] = transformations
        self.panels.append(p)
        self.x += w
        self.row_h = max(self.row_h, h)

    def timeseries(self, title, targets, unit="short", **kw):
        kw.setdefault("options", {
            "legend": {"displayMode": "table", "placement": "bottom", "calcs": ["mean", "max", "lastNotNull"]},
            "tooltip": {"mode": "multi", "sort": "desc"}})
        self.panel("timeseries", title, targets, unit, **kw)

    def to_json(self):
        for i, p in enumerate(self.panels, 1):
            p["id"] = i
        return {
            "uid": self.uid,
            "title": self.title,
            "description": self.description,
            "tags": ["mixserve"],
            "timezone": "browser",
            "editable": True,
            "graphTooltip": 1,
            "refresh": "30s",
            "time": {"from": "now-1h", "to": "now"},
            "schemaVersion": 39,
            "version": 1,
            "templating": {"list": self.variables},
            "annotations": {"list": []},
            "links": [{"type": "dashboards", "tags": ["mixserve"], "asDropdown": False,
                       "title": "mixserve dashboards"}],
            "panels": self.panels,
        }


def datasource_var():
    return {"name": "datasource", "label": "Data source", "type": "datasource",
            "query": "prometheus", "current": {"text": "Prometheus", "value": "prometheus"},
            "hide": 0}


def query_var(name, label, query):
    return {"name": name, "label": label, "type": "query", "datasource": DS,
            "query": {"query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
            "definition": query, "refresh": 2, "sort": 1, "multi": True, "includeAll": True,
            "allValue": ".*", "current": {"text": "All", "value": "$__all"}, "hide": 0}


def serving_board():
    b = Board("mixserve-serving", "mixserve / Serving",
              "Throughput, latency, errors, queues, batching, device memory and model state of "
              "mixserve servers (metrics: docs/server.md).",
              [datasource_var(),
               query_var("instance", "Instance", "label_values(mixserve_model_state, instance)"),
               query_var("model", "Model", 'label_values(mixserve_model_state{instance=~"$instance"}, model)')])
    legend = "{{model}}/{{version}}"

    b.row("Traffic")
    b.timeseries("Sentences per second", [
        {"expr": "sum by (%s) (rate(mixserve_sentences_total{%s}[$__rate_interval]))" % (VARIANT, SERVE),
         "legend": legend}], unit="short", w=8,
        description="Sentences translated successfully per variant.")
    b.timeseries("Tokens per second", [
        {"expr": "sum by (%s) (rate(mixserve_input_tokens_total{%s}[$__rate_interval]))" % (VARIANT, SERVE),
         "legend": legend + " source"},
        {"expr": "sum by (%s) (rate(mixserve_output_tokens_total{%s}[$__rate_interval]))" % (VARIANT, SERVE),
         "legend": legend + " target"}], unit="short", w=8,
        description="Source tokens read and target tokens produced per variant.")
    b.timeseries("Calls per second by method and code", [
        {"expr": "sum by (method, code) (rate(mixserve_requests_total{%s}[$__rate_interval]))" % SERVE,
         "legend": "{{method}} {{code}}"}], unit="reqps", w=8,
        description="Finished calls (one per message of a TranslateStream; method=shadow for shadow copies).")

    b.row("Errors")
    b.timeseries("Error rate by status", [
        {"expr": ('sum by (code) (rate(mixserve_requests_total{%s, method!="shadow", code!="OK"}[$__rate_interval]))\n'
                  '/ scalar(sum(rate(mixserve_requests_total{%s, method!="shadow"}[$__rate_interval])))') % (SERVE, SERVE),
         "legend": "{{code}}"}], unit="percentunit", w=12,
        description="Share of calls ending with each non-OK gRPC code (shadow copies excluded).")
    b.timeseries("Server-side error ratio per variant", [
        {"expr": ('sum by (%s) (rate(mixserve_requests_total{%s, method!="shadow", '
                  'code=~"UNKNOWN|DEADLINE_EXCEEDED|RESOURCE_EXHAUSTED|INTERNAL|UNAVAILABLE|DATA_LOSS"}[$__rate_interval]))\n'
                  '/ sum by (%s) (rate(mixserve_requests_total{%s, method!="shadow"}[$__rate_interval]))') % (VARIANT, SERVE, VARIANT, SERVE),
         "legend": legend}], unit="percentunit", w=12,
        description="What the MixserveHighErrorRate alert watches (threshold 5%). Caller errors excluded.")

    b.row("Latency")
    lat = []
    for q in ("0.5", "0.9", "0.99"):
        lat.append({"expr": ('histogram_quantile(%s, sum by (le, %s) (rate(mixserve_request_duration_seconds_bucket'
                             '{%s, method!="shadow", model!=""}[$__rate_interval])))') % (q, VARIANT, SERVE),
                    "legend": "p%s %s" % (str(round(float(q) * 100)), legend)})
    b.timeseries("End-to-end latency per variant (p50, p90, p99)", lat, unit="s", w=12,
                 description="histogram_quantile over mixserve_request_duration_seconds_bucket.")
    b.timeseries("p99 latency by method", [
        {"expr": ('histogram_quantile(0.99, sum by (le, method) (rate(mixserve_request_duration_seconds_bucket'
                  '{%s, model!=""}[$__rate_interval])))') % SERVE,
         "legend": "{{method}}"}], unit="s", w=12,
        description="The latency alert watches p99 of Translate and TranslateStream (objective 1 s).")
    for metric, title, desc in (
            ("mixserve_queue_duration_seconds", "Queue wait per variant (p50, p99)",
             "Time a sentence waited in its variant's queue."),
            ("mixserve_compute_duration_seconds", "Compute time per variant (p50, p99)",
             "Time from joining a decode batch to the result.")):
        b.timeseries(title, [
            {"expr": ("histogram_quantile(%s, sum by (le, %s) (rate(%s_bucket{%s}[$__rate_interval])))"
                      % (q, VARIANT, metric, SERVE)),
             "legend": "p%s %s" % (p, legend)} for q, p in (("0.5", "50"), ("0.99", "99"))],
            unit="s", w=12, description=desc)
    b.panel("heatmap", "Latency distribution (all calls)", [
        {"expr": ('sum by (le) (increase(mixserve_request_duration_seconds_bucket'
                  '{%s, method!="shadow"}[$__rate_interval]))') % SERVE,
         "legend": "{{le}}", "format": "heatmap"}], unit="s", w=24,
        options={"calculate": False, "yAxis": {"unit": "s"}, "cellGap": 1,
                 "color": {"mode": "scheme", "scheme": "Oranges"}})

    b.row("Queues and batching")
    b.timeseries("Queue depth", [
        {"expr": "sum by (%s) (mixserve_queue_depth{%s})" % (VARIANT, SERVE), "legend": legend}],
        unit="short", w=8, description="Sentences waiting; a full queue answers RESOURCE_EXHAUSTED.")
    b.timeseries("Sentences in the running batch", [
        {"expr": "sum by (%s) (mixserve_inflight_sentences{%s})" % (VARIANT, SERVE), "legend": legend}],
        unit="short", w=8)
    b.timeseries("Batch size (mean, p90)", [
        {"expr": ("sum by (%s) (rate(mixserve_batch_size_sum{%s}[$__rate_interval]))\n"
                  "/ sum by (%s) (rate(mixserve_batch_size_count{%s}[$__rate_interval]))") % (VARIANT, SERVE, VARIANT, SERVE),
         "legend": "mean " + legend},
        {"expr": ("histogram_quantile(0.9, sum by (le, %s) (rate(mixserve_batch_size_bucket{%s}[$__rate_interval])))"
                  % (VARIANT, SERVE)),
         "legend": "p90 " + legend}], unit="short", w=8,
        description="Sentences in the decode batch at each decoding step.")
    b.timeseries("Scheduler thread busy, per phase", [
        {"expr": ("sum by (%s, phase) (rate(mixserve_scheduler_phase_duration_seconds_sum{%s}[$__rate_interval]))"
                  % (VARIANT, SERVE)),
         "legend": "{{phase}} " + legend}], unit="percentunit", w=24,
        description=("Share of each variant's scheduler thread spent admitting sentences (encoder, "
                     "decoder state), in decoding steps and answering finished sentences; what "
                     "remains of 100% is waiting and bookkeeping."))

    b.row("Models and devices")
    b.timeseries("Device memory", [
        {"expr": "sum by (instance, %s, device) (mixserve_device_memory_bytes{%s})" % (VARIANT, SERVE),
         "legend": "{{instance}} {{device}} " + legend}], unit="bytes", w=12,
        description="Device memory held on each variant's device (0 on CPU).")
    b.panel("table", "Model state", [
        {"expr": "mixserve_model_state{%s} == 1" % SERVE, "instant": True, "format": "table"}],
        w=12, description="Current state of every model version (loading, ready, unavailable, unloaded).",
        transformations=[{"id": "organize", "options": {
            "excludeByName": {"Time": True, "Value": True, "__name__": True, "job": True},
            "indexByName": {"instance": 0, "model": 1, "version": 2, "state": 3}}}],
        overrides=[{"matcher": {"id": "byName", "options": "state"}, "properties": [
            {"id": "mappings", "value": [{"type": "value", "options": {
                "ready": {"color": "green", "index": 0},
                "loading": {"color": "blue", "index": 1},
                "unavailable": {"color": "red", "index": 2},
                "unloaded": {"color": "text", "index": 3}}}]},
            {"id": "custom.cellOptions", "value": {"type": "color-text"}}]}])
    b.panel("stat", "Load failures (selected window)", [
        {"expr": 'sum by (model) (increase(mixserve_model_load_failures_total{instance=~"$instance", model=~"$model"}[$__range]))',
         "legend": "{{model}}", "instant": True}], w=24, h=4,
        field={"thresholds": {"mode": "absolute", "steps": [{"color": "green", "value": None},
                                                           {"color": "red", "value": 1}]}},
        options={"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "background"})
    return b


def ab_board():
    b = Board("mixserve-ab", "mixserve / A/B quality",
              "Corpus BLEU per variant from the online BLEU counters (requests that carry a "
              "reference), the traffic split between variants and shadow agreement.",
              [datasource_var(),
               query_var("instance", "Instance", "label_values(mixserve_sentences_total, instance)"),
               query_var("source_language", "Source", "label_values(mixserve_sentences_total, source_language)"),
               query_var("target_language", "Target", "label_values(mixserve_sentences_total, target_language)"),
               {"name": "bleu_window", "label": "BLEU window (over time)", "type": "custom",
                "query": "15m,1h,6h,1d", "current": {"text": "1h", "value": "1h"},
                "options": [{"text": w, "value": w, "selected": w == "1h"} for w in ("15m", "1h", "6h", "1d")],
                "hide": 0}])
    legend = "{{model}}/{{version}} {{source_language}}-{{target_language}}"

    b.row("Selected window")
    b.panel("bargauge", "Corpus BLEU per variant (selected window)", [
        {"expr": bleu_expr("mixserve_bleu", AB, "$__range", PAIR_VARIANT), "legend": legend,
         "instant": True}], unit="none", w=12, h=9,
        description=("Corpus BLEU of each variant over the dashboard's time range, from the summed "
                     "n-gram statistics: 100 * BP * exp(mean_n ln(matching_n / hypothesis_n)), "
                     "BP = min(1, exp(1 - ref_len / hyp_len)). Only requests with a reference count."),
        field={"min": 0, "max": 100, "decimals": 2},
        options={"orientation": "horizontal", "displayMode": "gradient", "showUnfilled": True,
                 "reduceOptions": {"calcs": ["lastNotNull"]}})
    b.panel("piechart", "Traffic split per variant (sentences, selected window)", [
        {"expr": "sum by (%s) (increase(mixserve_sentences_total{%s}[$__range]))" % (PAIR_VARIANT, AB),
         "legend": legend, "instant": True}], w=12, h=9,
        options={"pieType": "donut", "displayLabels": ["percent"],
                 "legend": {"displayMode": "table", "placement": "right", "values": ["value", "percent"]},
                 "reduceOptions": {"calcs": ["lastNotNull"]}})
    b.panel("table", "A/B summary (selected window)", [
        {"expr": bleu_expr("mixserve_bleu", AB, "$__range", PAIR_VARIANT), "instant": True, "format": "table"},
        {"expr": "sum by (%s) (increase(mixserve_bleu_sentences_total{%s}[$__range]))" % (PAIR_VARIANT, AB),
         "instant": True, "format": "table"},
        {"expr": ("sum by (%s) (increase(mixserve_sentences_total{%s}[$__range]))\n"
                  "/ on (source_language, target_language) group_left ()\n"
                  "  sum by (source_language, target_language) (increase(mixserve_sentences_total{%s}[$__range]))")
                 % (PAIR_VARIANT, AB, AB), "instant": True, "format": "table"},
        {"expr": ("sum by (%s) (increase(mixserve_bleu_hypothesis_length_total{%s}[$__range]))\n"
                  "/ sum by (%s) (increase(mixserve_bleu_reference_length_total{%s}[$__range]))")
                 % (PAIR_VARIANT, AB, PAIR_VARIANT, AB), "instant": True, "format": "table"}],
        w=24, h=7,
        description="BLEU, sentences with a reference, share of the pair's sentences, hypothesis/reference length ratio.",
        transformations=[
            {"id": "merge", "options": {}},
            {"id": "organize", "options": {
                "excludeByName": {"Time": True},
                "renameByName": {"Value #A": "BLEU", "Value #B": "sentences with reference",
                                 "Value #C": "traffic share", "Value #D": "length ratio",
                                 "source_language": "source", "target_language": "target"}}}],
        overrides=[
            {"matcher": {"id": "byName", "options": "traffic share"},
             "properties": [{"id": "unit", "value": "percentunit"}]},
            {"matcher": {"id": "byName", "options": "BLEU"},
             "properties": [{"id": "decimals", "value": 2}]},
            {"matcher": {"id": "byName", "options": "length ratio"},
             "properties": [{"id": "decimals", "value": 3}]}])
    b.panel("bargauge", "n-gram precision per variant and order (selected window)", [
        {"expr": ("sum by (%s, order) (increase(mixserve_bleu_matching_ngrams_total{%s}[$__range]))\n"
                  "/ sum by (%s, order) (increase(mixserve_bleu_hypothesis_ngrams_total{%s}[$__range]))")
                 % (PAIR_VARIANT, AB, PAIR_VARIANT, AB),
         "legend": "{{model}}/{{version}} order {{order}}", "instant": True}],
        unit="percentunit", w=24, h=8, field={"min": 0, "max": 1},
        options={"orientation": "vertical", "displayMode": "basic",
                 "reduceOptions": {"calcs": ["lastNotNull"]}})

    b.row("Over time")
    b.timeseries("Corpus BLEU per variant (rolling $bleu_window)", [
        {"expr": bleu_expr("mixserve_bleu", AB, "$bleu_window", PAIR_VARIANT), "legend": legend}],
        unit="none", w=12, field={"decimals": 2})
    b.timeseries("Traffic share per variant", [
        {"expr": ("sum by (%s) (rate(mixserve_sentences_total{%s}[$__rate_interval]))\n"
                  "/ on (source_language, target_language) group_left ()\n"
                  "  sum by (source_language, target_language) (rate(mixserve_sentences_total{%s}[$__rate_interval]))")
                 % (PAIR_VARIANT, AB, AB), "legend": legend}], unit="percentunit", w=12,
        field={"min": 0, "max": 1})

    b.row("Shadow agreement")
    b.timeseries("Shadow BLEU against the primary answer (rolling $bleu_window)", [
        {"expr": bleu_expr("mixserve_shadow_bleu", 'instance=~"$instance"', "$bleu_window",
                           "model, version, shadow_model, shadow_version"),
         "legend": "{{shadow_model}}/{{shadow_version}} vs {{model}}/{{version}}"}],
        unit="none", w=12, field={"decimals": 2},
        description="BLEU of the shadow variant's output with the primary's output as reference.")
    b.timeseries("Shadow sentences per second", [
        {"expr": ('sum by (model, version, shadow_model, shadow_version) '
                  '(rate(mixserve_shadow_sentences_total{instance=~"$instance"}[$__rate_interval]))'),
         "legend": "{{shadow_model}}/{{shadow_version}} vs {{model}}/{{version}}"}], unit="short", w=12)
    return b


def boards():
    return {"mixserve-serving.json": serving_board().to_json(),
            "mixserve-ab.json": ab_board().to_json()}


def render(board):
    return json.dumps(board, indent=2, ensure_ascii=False) + "\n"


def main(argv):
    out = argv[1] if len(argv) > 1 else os.path.join(HERE, "dashboards")
    os.makedirs(out, exist_ok=True)
    for name, board in boards().items():
        with open(os.path.join(out, name), "w", encoding="utf-8") as f:
            f.write(render(board))
        print("wrote", os.path.join(out, name))


if __name__ == "__main__":
    main(sys.argv)
