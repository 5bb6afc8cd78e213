// File: report/svg.hpp
// Small SVG building blocks of the HTML reports (report/html_report.hpp): escaping, number formatting, a
// colour scale and the chart types the pages use. Every chart is one <svg> element with class "chart" and a
// data-chart name; every mark that shows a number carries it in data-value, printed exactly as the JSON
// prints it, so a test can compare the picture with the JSON.
#pragma once

#include <string>
#include <vector>

namespace rackep::report {

/// XML text/attribute escaping (& < > " ').
std::string esc(const std::string& s);
/// Shortest round-trip decimal of `v` (the form nlohmann::json dumps).
std::string num(double v);
/// Fixed-precision label text.
std::string fmt(double v, int decimals);
/// Fill colour of series `i` (a fixed palette, cycled).
std::string series_colour(size_t i);

struct BarSeries {
  std::string key;             ///< JSON key shown (data-key)
  std::string label;           ///< legend text
  std::vector<double> values;  ///< one per category
};

/// Horizontal bars, one group per category (e.g. balancer), one bar per series; `stacked` stacks the series.
std::string bar_chart(const std::string& chart, const std::string& title, const std::string& unit,
                      const std::vector<std::string>& categories, const std::vector<BarSeries>& series,
                      bool stacked);

/// Heatmap, rows x columns of values (NaN = no data), coloured from `lo` (white) to `hi` (dark red). Rows are
/// labelled with `row_names` (their index when empty); data-row/data-col are the indices.
std::string heatmap(const std::string& chart, const std::string& title, const std::string& row_label,
                    const std::vector<std::string>& row_names, const std::string& col_label,
                    const std::vector<std::vector<double>>& values, double lo, double hi);

struct Curve {
  std::string label;
  std::vector<double> x, y;
};

/// Line chart; `x_ticks` labels the x positions (categorical axes such as a swept topology name).
std::string line_chart(const std::string& chart, const std::string& title, const std::string& x_label,
                       const std::string& y_label, const std::vector<std::string>& x_ticks,
                       const std::vector<Curve>& curves);

struct Span {
  int lane = 0;  ///< 0 compute, 1 communication
  std::string name;
  double start_s = 0, end_s = 0;
  int layer = -1;
};
struct Track {
  std::string label;
  std::vector<Span> spans;
};

/// Gantt-like excerpt: two lanes (compute, communication) per track on one time axis.
std::string timeline_chart(const std::string& chart, const std::string& title,
                           const std::vector<Track>& tracks);

}  // namespace rackep::report
