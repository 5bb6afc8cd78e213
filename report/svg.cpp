#include "report/svg.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <sstream>

namespace rackep::report {
namespace {

constexpr int kWidth = 860;   // every chart's width in px
constexpr int kLabelW = 150;  // left margin for category labels
constexpr int kRight = 24;    // right margin
constexpr int kTitleH = 28;   // title band

std::string text(double x, double y, const std::string& s, const char* anchor = "start",
                 const char* cls = "lbl") {
  std::ostringstream o;
  o << "<text x=\"" << fmt(x, 1) << "\" y=\"" << fmt(y, 1) << "\" text-anchor=\"" << anchor << "\" class=\""
    << cls << "\">" << esc(s) << "</text>";
  return o.str();
}

std::string open_svg(const std::string& chart, const std::string& title, int height) {
  std::ostringstream o;
  o << "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" data-chart=\"" << esc(chart)
    << "\" width=\"" << kWidth << "\" height=\"" << height << "\" viewBox=\"0 0 " << kWidth << " " << height
    << "\">"
    << "<title>" << esc(title) << "</title>" << text(8, 18, title, "start", "ttl");
  return o.str();
}

// A "nice" axis maximum >= v (1, 2, 2.5 or 5 times a power of ten).
double nice_max(double v) {
  if (!(v > 0) || !std::isfinite(v)) return 1.0;
  const double p = std::pow(10.0, std::floor(std::log10(v)));
  for (double m : {1.0, 2.0, 2.5, 5.0, 10.0})
    if (m * p >= v) return m * p;
  return 10 * p;
}

std::string axis_ticks(double x0, double x1, double y, double max, int ticks) {
  std::ostringstream o;
  for (int i = 0; i <= ticks; ++i) {
    const double v = max * i / ticks;
    const double x = x0 + (x1 - x0) * i / ticks;
    o << "<line x1=\"" << fmt(x, 1) << "\" y1=\"" << fmt(y, 1) << "\" x2=\"" << fmt(x, 1) << "\" y2=\""
      << fmt(y + 4, 1) << "\" class=\"ax\"/>" << text(x, y + 15, fmt(v, v < 10 ? 2 : 1), "middle", "tick");
  }
  return o.str();
}

}  // namespace

std::string esc(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string num(double v) {
  if (!std::isfinite(v)) return "null";
  return nlohmann::json(v).dump();
}

std::string fmt(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", decimals, v);
  return buf;
}

std::string series_colour(size_t i) {
  static const char* palette[] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                                  "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac",
                                  "#1b7837", "#5e3c99", "#d6604d", "#2c7fb8"};
  return palette[i % (sizeof(palette) / sizeof(palette[0]))];
}

std::string bar_chart(const std::string& chart, const std::string& title, const std::string& unit,
                      const std::vector<std::string>& categories, const std::vector<BarSeries>& series,
                      bool stacked) {
  const int bar_h = 14;
  const int per_cat = stacked ? bar_h + 8 : static_cast<int>(series.size()) * bar_h + 8;
  const int legend_h = 20;
  const int height = kTitleH + legend_h + static_cast<int>(categories.size()) * per_cat + 30;
  double max = 0;
  for (size_t c = 0; c < categories.size(); ++c) {
    double sum = 0;
    for (const BarSeries& s : series) {
      const double v = c < s.values.size() ? std::max(0.0, s.values[c]) : 0.0;
      sum += v;
      max = std::max(max, v);
    }
    if (stacked) max = std::max(max, sum);
  }
  max = nice_max(max);
  const double x0 = kLabelW, x1 = kWidth - kRight - 60;
  std::ostringstream o;
  o << open_svg(chart, title, height);
  double lx = x0;
  for (size_t s = 0; s < series.size(); ++s) {
    o << "<rect x=\"" << fmt(lx, 1) << "\" y=\"" << kTitleH - 2 << "\" width=\"10\" height=\"10\" fill=\""
      << series_colour(s) << "\"/>" << text(lx + 14, kTitleH + 7, series[s].label);
    lx += 24 + 7.0 * static_cast<double>(series[s].label.size());
  }
  int y = kTitleH + legend_h;
  for (size_t c = 0; c < categories.size(); ++c) {
    o << text(x0 - 6, y + (stacked ? bar_h : per_cat - 8) / 2.0 + 4, categories[c], "end");
    double acc = 0;
    for (size_t s = 0; s < series.size(); ++s) {
      const double v = c < series[s].values.size() ? series[s].values[c] : 0.0;
      const double w = (x1 - x0) * std::max(0.0, v) / max;
      const double bx = stacked ? x0 + (x1 - x0) * acc / max : x0;
      const int by = stacked ? y : y + static_cast<int>(s) * bar_h;
      o << "<rect class=\"bar\" x=\"" << fmt(bx, 2) << "\" y=\"" << by << "\" width=\"" << fmt(w, 2)
        << "\" height=\"" << bar_h - 2 << "\" fill=\"" << series_colour(s) << "\" data-category=\""
        << esc(categories[c]) << "\" data-key=\"" << esc(series[s].key) << "\" data-value=\"" << num(v)
        << "\"><title>" << esc(categories[c] + " " + series[s].label + ": " + fmt(v, 3) + " " + unit)
        << "</title></rect>";
      if (!stacked) o << text(bx + w + 4, by + bar_h - 4, fmt(v, v < 10 ? 3 : 1), "start", "val");
      acc += std::max(0.0, v);
    }
    if (stacked) o << text(x0 + (x1 - x0) * acc / max + 4, y + bar_h - 4, fmt(acc, 3), "start", "val");
    y += per_cat;
  }
  o << "<line x1=\"" << x0 << "\" y1=\"" << y << "\" x2=\"" << fmt(x1, 1) << "\" y2=\"" << y
    << "\" class=\"ax\"/>" << axis_ticks(x0, x1, y, max, 5) << text(x1 + 24, y + 15, unit, "start", "tick")
    << "</svg>";
  return o.str();
}

std::string heatmap(const std::string& chart, const std::string& title, const std::string& row_label,
                    const std::vector<std::string>& row_names, const std::string& col_label,
                    const std::vector<std::vector<double>>& values, double lo, double hi) {
  auto name = [&](size_t r) { return r < row_names.size() ? row_names[r] : std::to_string(r); };
  const size_t rows = values.size();
  size_t cols = 0;
  for (const auto& r : values) cols = std::max(cols, r.size());
  const double x0 = 70, avail_w = kWidth - kRight - x0 - 90;
  const double cw = cols ? std::min(24.0, avail_w / static_cast<double>(cols)) : 1.0;
  const double ch = rows ? std::max(2.0, std::min(14.0, 420.0 / static_cast<double>(rows))) : 1.0;
  const int height = kTitleH + 20 + static_cast<int>(ch * static_cast<double>(rows)) + 36;
  std::ostringstream o;
  o << open_svg(chart, title, height);
  const double y0 = kTitleH + 14;
  for (size_t r = 0; r < rows; ++r) {
    if (rows <= 40 || r % ((rows + 39) / 40) == 0)
      o << text(x0 - 4, y0 + ch * static_cast<double>(r) + ch - 2, name(r), "end", "tick");
    for (size_t c = 0; c < values[r].size(); ++c) {
      const double v = values[r][c];
      if (!std::isfinite(v)) continue;
      const double t = hi > lo ? std::clamp((v - lo) / (hi - lo), 0.0, 1.0) : 0.0;
      char colour[16];
      std::snprintf(colour, sizeof(colour), "#%02x%02x%02x", 255, static_cast<int>(255 - 200 * t),
                    static_cast<int>(255 - 230 * t));
      o << "<rect class=\"cell\" x=\"" << fmt(x0 + cw * static_cast<double>(c), 2) << "\" y=\""
        << fmt(y0 + ch * static_cast<double>(r), 2) << "\" width=\"" << fmt(cw, 2) << "\" height=\""
        << fmt(ch, 2) << "\" fill=\"" << colour << "\" data-row=\"" << r << "\" data-col=\"" << c
        << "\" data-value=\"" << num(v) << "\"><title>" << esc(row_label) << " " << esc(name(r)) << ", "
        << esc(col_label) << " " << c << ": " << fmt(v, 3) << "</title></rect>";
    }
  }
  const double yb = y0 + ch * static_cast<double>(rows);
  o << text(x0, yb + 16, col_label + " (0.." + std::to_string(cols ? cols - 1 : 0) + ") →", "start", "tick")
    << text(12, y0 + 8, row_label, "start", "tick");
  const double lx = kWidth - kRight - 70;
  for (int i = 0; i < 10; ++i) {
    const double t = i / 9.0;
    char colour[16];
    std::snprintf(colour, sizeof(colour), "#%02x%02x%02x", 255, static_cast<int>(255 - 200 * t),
                  static_cast<int>(255 - 230 * t));
    o << "<rect x=\"" << fmt(lx, 1) << "\" y=\"" << fmt(y0 + 12.0 * (9 - i), 1)
      << "\" width=\"14\" height=\"12\" fill=\"" << colour << "\"/>";
  }
  o << text(lx + 18, y0 + 10, fmt(hi, 2), "start", "tick")
    << text(lx + 18, y0 + 118, fmt(lo, 2), "start", "tick") << "</svg>";
  return o.str();
}

std::string line_chart(const std::string& chart, const std::string& title, const std::string& x_label,
                       const std::string& y_label, const std::vector<std::string>& x_ticks,
                       const std::vector<Curve>& curves) {
  const int plot_h = 240;
  const int legend_h = 18 * static_cast<int>((curves.size() + 3) / 4);
  const int height = kTitleH + legend_h + plot_h + 44;
  double xmin = std::numeric_limits<double>::infinity(), xmax = -xmin, ymax = 0;
  for (const Curve& c : curves)
    for (size_t i = 0; i < c.x.size(); ++i) {
      xmin = std::min(xmin, c.x[i]);
      xmax = std::max(xmax, c.x[i]);
      if (std::isfinite(c.y[i])) ymax = std::max(ymax, c.y[i]);
    }
  if (!std::isfinite(xmin)) xmin = 0, xmax = 1;
  if (xmax <= xmin) xmax = xmin + 1;
  ymax = nice_max(ymax);
  const double x0 = 70, x1 = kWidth - kRight - 20;
  const double y0 = kTitleH + legend_h + 6, y1 = y0 + plot_h;
  auto px = [&](double x) { return x0 + (x1 - x0) * (x - xmin) / (xmax - xmin); };
  auto py = [&](double y) { return y1 - (y1 - y0) * y / ymax; };
  std::ostringstream o;
  o << open_svg(chart, title, height);
  for (size_t i = 0; i < curves.size(); ++i) {
    const double lx = x0 + static_cast<double>(i % 4) * 190;
    const double ly = kTitleH + 18.0 * static_cast<double>(i / 4);
    o << "<rect x=\"" << fmt(lx, 1) << "\" y=\"" << fmt(ly - 2, 1) << "\" width=\"10\" height=\"10\" fill=\""
      << series_colour(i) << "\"/>" << text(lx + 14, ly + 7, curves[i].label);
  }
  for (int t = 0; t <= 4; ++t) {
    const double v = ymax * t / 4;
    o << "<line x1=\"" << x0 << "\" y1=\"" << fmt(py(v), 1) << "\" x2=\"" << fmt(x1, 1) << "\" y2=\""
      << fmt(py(v), 1) << "\" class=\"grid\"/>"
      << text(x0 - 4, py(v) + 4, fmt(v, v < 10 ? 2 : 1), "end", "tick");
  }
  for (size_t t = 0; t < x_ticks.size(); ++t) {
    // Ticks sit at the curves' x positions: the first curve's x values in order.
    const double x = !curves.empty() && t < curves[0].x.size() ? curves[0].x[t] : static_cast<double>(t);
    o << text(px(x), y1 + 15, x_ticks[t], "middle", "tick");
  }
  o << text((x0 + x1) / 2, y1 + 32, x_label, "middle", "lbl") << text(8, y0 - 6, y_label, "start", "tick");
  for (size_t i = 0; i < curves.size(); ++i) {
    const Curve& c = curves[i];
    std::string points;
    for (size_t k = 0; k < c.x.size(); ++k)
      if (std::isfinite(c.y[k])) points += fmt(px(c.x[k]), 1) + "," + fmt(py(c.y[k]), 1) + " ";
    o << "<polyline fill=\"none\" stroke=\"" << series_colour(i) << "\" stroke-width=\"2\" points=\""
      << points << "\"/>";
    for (size_t k = 0; k < c.x.size(); ++k) {
      if (!std::isfinite(c.y[k])) continue;
      o << "<circle class=\"pt\" cx=\"" << fmt(px(c.x[k]), 1) << "\" cy=\"" << fmt(py(c.y[k]), 1)
        << "\" r=\"3.5\" fill=\"" << series_colour(i) << "\" data-series=\"" << esc(c.label) << "\" data-x=\""
        << num(c.x[k]) << "\" data-value=\"" << num(c.y[k]) << "\"><title>" << esc(c.label) << ": "
        << fmt(c.y[k], 3) << "</title></circle>";
    }
  }
  o << "<line x1=\"" << x0 << "\" y1=\"" << fmt(y1, 1) << "\" x2=\"" << fmt(x1, 1) << "\" y2=\"" << fmt(y1, 1)
    << "\" class=\"ax\"/></svg>";
  return o.str();
}

std::string timeline_chart(const std::string& chart, const std::string& title,
                           const std::vector<Track>& tracks) {
  const int lane_h = 16;
  const int track_h = 2 * lane_h + 12;
  const int legend_h = 32;  // two rows of phase names
  const int height = kTitleH + legend_h + static_cast<int>(tracks.size()) * track_h + 30;
  double t0 = std::numeric_limits<double>::infinity(), t1 = -t0;
  for (const Track& tr : tracks)
    for (const Span& s : tr.spans) {
      t0 = std::min(t0, s.start_s);
      t1 = std::max(t1, s.end_s);
    }
  if (!std::isfinite(t0)) t0 = 0, t1 = 1;
  if (t1 <= t0) t1 = t0 + 1e-9;
  const double x0 = kLabelW, x1 = kWidth - kRight;
  auto px = [&](double t) { return x0 + (x1 - x0) * (t - t0) / (t1 - t0); };
  std::map<std::string, size_t> phase_colour;
  std::ostringstream o;
  o << open_svg(chart, title, height);
  int y = kTitleH + legend_h;
  for (const Track& tr : tracks) {
    o << text(x0 - 6, y + 12, tr.label, "end") << text(x0 - 6, y + lane_h + 12, "comm", "end", "tick");
    for (const Span& s : tr.spans) {
      const auto it = phase_colour.emplace(s.name, phase_colour.size()).first;
      const double w = std::max(0.5, px(s.end_s) - px(s.start_s));
      o << "<rect class=\"span\" x=\"" << fmt(px(s.start_s), 2) << "\" y=\"" << y + s.lane * lane_h
        << "\" width=\"" << fmt(w, 2) << "\" height=\"" << lane_h - 2 << "\" fill=\""
        << series_colour(it->second) << "\" data-phase=\"" << esc(s.name) << "\" data-value=\""
        << num((s.end_s - s.start_s) * 1e3) << "\"><title>" << esc(s.name)
        << (s.layer >= 0 ? " layer " + std::to_string(s.layer) : std::string()) << ": "
        << fmt((s.end_s - s.start_s) * 1e3, 4) << " ms</title></rect>";
    }
    y += track_h;
  }
  o << axis_ticks(x0, x1, y, (t1 - t0) * 1e3, 5)
    << text(x1, y + 28, "ms from the excerpt's start", "end", "tick");
  double lx = x0;
  int ly = kTitleH;
  for (const auto& [name, idx] : phase_colour) {
    const double w = 20 + 6.0 * static_cast<double>(name.size());
    if (lx + w > x1) {  // next row
      if (ly > kTitleH) break;
      lx = x0;
      ly += 14;
    }
    o << "<rect x=\"" << fmt(lx, 1) << "\" y=\"" << ly << "\" width=\"10\" height=\"10\" fill=\""
      << series_colour(idx) << "\"/>" << text(lx + 13, ly + 9, name, "start", "tick");
    lx += w;
  }
  o << "</svg>";
  return o.str();
}

}  // namespace rackep::report
