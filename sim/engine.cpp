// SimGrid execution of a StepGraph (sim/engine.hpp): the platform of docs/DESIGN.md built from a Fabric,
// one actor per (rank, stream), collectives as parallel tasks (ptask) or per-pair comms (flow), SM holds as
// host pstates.
#include "sim/engine.hpp"

#include <xbt/log.h>
#include <simgrid/s4u.hpp>

#include <algorithm>
#include <exception>
#include <string>

#include "core/error.hpp"

namespace rackep::sim {

namespace sg4 = simgrid::s4u;

Fidelity parse_fidelity(const std::string& text) {
  if (text == "ptask") return Fidelity::kPtask;
  if (text == "flow") return Fidelity::kFlow;
  if (text == "analytic") {
    throw InputError("--fidelity", text,
                     "was retired with the phase-by-phase step loop: the step is now one SimGrid simulation "
                     "(use ptask; sim/fabric.hpp's analytic_phase_time_s remains the per-phase bound)");
  }
  throw InputError("--fidelity", text, "must be ptask or flow");
}

const char* to_string(Fidelity f) {
  return f == Fidelity::kPtask ? "ptask" : "flow";
}

nlohmann::json fabric_to_json(const Fabric& f) {
  nlohmann::json j = {{"topology", f.topology_name},
                      {"num_ranks", f.num_ranks},
                      {"domain_size", f.domain_size},
                      {"num_domains", f.num_domains()},
                      {"port_bytes_per_s_effective", f.port_bytes_per_s},
                      {"port_latency_s", f.port_latency_s},
                      {"intra_domain_route", "port_up[src], port_down[dst]"},
                      {"intra_domain_route_latency_s", f.intra_latency_s()}};
  if (f.has_scale_out) {
    j["nic_bytes_per_s_effective"] = f.nic_bytes_per_s;
    j["nic_latency_s"] = f.nic_latency_s;
    j["core_latency_s"] = f.core_latency_s;
    j["domain_uplink_bytes_per_s"] = f.uplink_bytes_per_s;
    j["inter_domain_route"] =
        f.uplink_bytes_per_s > 0.0
            ? "nic_up[src], uplink_up[src domain], core, uplink_down[dst domain], nic_down[dst]"
            : "nic_up[src], core, nic_down[dst]";
    j["inter_domain_route_latency_s"] = f.inter_latency_s();
  }
  return j;
}

namespace {

bool g_engine_created = false;  // SimGrid 3.32 supports one engine per process

// Core of a non-blocking fat tree: FATPIPE (no sharing), fast enough never to bind (each flow is already
// limited by its NICs), so it only adds latency.
constexpr double kCoreBytesPerS = 1e15;
// Host speed: one "flop" is one nanosecond of the whole GPU, so durations keep SimGrid's relative precision.
constexpr double kHostSpeed = 1e9;

}  // namespace

struct StepEngine::Impl {
  EngineConfig cfg;
  std::unique_ptr<sg4::Engine> engine;
  // Per GPU: `hosts` run its kernels (one pstate per SM count held by communication), `nets` are its network
  // endpoint (NVLink port, NIC) that collectives move bytes between. Kept apart because an L07 parallel task
  // joins the CPU constraint of every host it names: collectives over the compute hosts would tie every
  // kernel's start and end to every running collective's whole link set in the max-min system (the cost of
  // a 576-GPU step was dominated by that bookkeeping), while kernels and transfers share no resource here:
  // they interact only through the SMs a comm kernel holds.
  std::vector<sg4::Host*> hosts, nets, peers;

  // Per-run state.
  const StepGraph* g = nullptr;
  int n = 0;
  double t0 = 0.0;
  std::vector<char> done;                     // [op * N + r]
  std::vector<sg4::ConditionVariablePtr> cv;  // per rank: an op of that rank finished
  std::vector<sg4::MutexPtr> mu;
  std::vector<int> held_sms;  // per rank
  std::vector<int> arrived;   // per collective
  std::vector<char> coll_done;
  StepResult* out = nullptr;

  void build_platform() {
    const Fabric& f = cfg.fabric;
    const int num = f.num_ranks;
    std::vector<double> speeds(static_cast<size_t>(cfg.num_sms));
    for (int k = 0; k < cfg.num_sms; ++k) speeds[k] = kHostSpeed * (cfg.num_sms - k) / cfg.num_sms;
    hosts.resize(num);
    nets.resize(num);
    const bool full = f.num_domains() > 1 || cfg.peers;
    if (!full) {
      // One NVLink domain: a star, one split-duplex port per GPU (docs/HARDWARE.md).
      sg4::NetZone* zone = sg4::create_star_zone("rack");
      for (int i = 0; i < num; ++i) {
        hosts[i] = zone->create_host("gpu-" + std::to_string(i), speeds);
        nets[i] = zone->create_host("gpu-" + std::to_string(i) + "-net", kHostSpeed);
        sg4::Link* port = zone->create_split_duplex_link("nvport-" + std::to_string(i), f.port_bytes_per_s)
                              ->set_latency(f.port_latency_s);
        zone->add_route(nets[i]->get_netpoint(), nullptr, nullptr, nullptr,
                        {sg4::LinkInRoute(port, sg4::LinkInRoute::Direction::UP)}, true);
      }
      zone->seal();
      return;
    }
    // Several domains (or pipeline peers): one full zone with explicit per-pair routes, so NVLink and NIC
    // traffic use different ports.
    sg4::NetZone* zone = sg4::create_full_zone("cluster");
    std::vector<sg4::Link*> ports(num), nics(num), uplinks, peer_nics;
    for (int i = 0; i < num; ++i) {
      hosts[i] = zone->create_host("gpu-" + std::to_string(i), speeds);
      nets[i] = zone->create_host("gpu-" + std::to_string(i) + "-net", kHostSpeed);
      ports[i] = zone->create_split_duplex_link("nvport-" + std::to_string(i), f.port_bytes_per_s)
                     ->set_latency(f.port_latency_s);
      nics[i] = zone->create_split_duplex_link("nic-" + std::to_string(i), f.nic_bytes_per_s)
                    ->set_latency(f.nic_latency_s);
    }
    if (f.uplink_bytes_per_s > 0.0) {
      for (int d = 0; d < f.num_domains(); ++d) {
        uplinks.push_back(zone->create_split_duplex_link("uplink-" + std::to_string(d), f.uplink_bytes_per_s)
                              ->set_latency(0));
      }
    }
    sg4::Link* core = zone->create_link("core", kCoreBytesPerS)
                          ->set_latency(f.core_latency_s)
                          ->set_sharing_policy(sg4::Link::SharingPolicy::FATPIPE);
    using Dir = sg4::LinkInRoute::Direction;
    for (int i = 0; i < num; ++i) {
      for (int j = 0; j < num; ++j) {
        if (i == j) continue;
        std::vector<sg4::LinkInRoute> route;
        if (f.same_domain(i, j)) {
          route = {sg4::LinkInRoute(ports[i], Dir::UP), sg4::LinkInRoute(ports[j], Dir::DOWN)};
        } else {
          route.emplace_back(nics[i], Dir::UP);
          if (!uplinks.empty()) route.emplace_back(uplinks[f.domain_of(i)], Dir::UP);
          route.emplace_back(core);
          if (!uplinks.empty()) route.emplace_back(uplinks[f.domain_of(j)], Dir::DOWN);
          route.emplace_back(nics[j], Dir::DOWN);
        }
        zone->add_route(nets[i]->get_netpoint(), nets[j]->get_netpoint(), nullptr, nullptr, route, false);
      }
    }
    if (cfg.peers) {
      // The neighbour pipeline stage of rank i, reached over i's NIC and the core (its own NIC never binds
      // more than i's: the stages are identical).
      peers.resize(num);
      for (int i = 0; i < num; ++i) {
        peers[i] = zone->create_host("pp-peer-" + std::to_string(i), kHostSpeed);
        sg4::Link* pn = zone->create_split_duplex_link("pp-peer-nic-" + std::to_string(i), f.nic_bytes_per_s)
                            ->set_latency(f.nic_latency_s);
        zone->add_route(
            nets[i]->get_netpoint(), peers[i]->get_netpoint(), nullptr, nullptr,
            {sg4::LinkInRoute(nics[i], Dir::UP), sg4::LinkInRoute(core), sg4::LinkInRoute(pn, Dir::DOWN)},
            false);
        zone->add_route(
            peers[i]->get_netpoint(), nets[i]->get_netpoint(), nullptr, nullptr,
            {sg4::LinkInRoute(pn, Dir::UP), sg4::LinkInRoute(core), sg4::LinkInRoute(nics[i], Dir::DOWN)},
            false);
      }
    }
    zone->seal();
  }

  void hold(int r, int sms) {
    held_sms[r] += sms;
    const int pstate = std::clamp(held_sms[r], 0, cfg.num_sms - 1);
    if (static_cast<int>(hosts[r]->get_pstate()) != pstate) hosts[r]->set_pstate(pstate);
  }

  void finish(uint32_t op, int r) {
    out->end[static_cast<size_t>(op) * n + r] = sg4::Engine::get_clock() - t0;
    mu[r]->lock();
    done[static_cast<size_t>(op) * n + r] = 1;
    cv[r]->notify_all();
    mu[r]->unlock();
  }

  bool deps_done(const Op& op, int r) const {
    const std::vector<uint32_t>& deps = g->deps();
    for (uint32_t k = 0; k < op.dep_count; ++k)
      if (!done[static_cast<size_t>(deps[op.dep_begin + k]) * n + r]) return false;
    return true;
  }

  void wait_deps(const Op& op, int r) {
    if (deps_done(op, r)) return;
    std::unique_lock<sg4::Mutex> lock(*mu[r]);
    while (!deps_done(op, r)) cv[r]->wait(lock);
  }

  // Moves the bytes of `rows` (indices into c.traffic) and returns when they have arrived.
  void transfer(const Collective& c, const std::vector<size_t>& rows) {
    if (rows.empty()) return;
    const double begin = sg4::Engine::get_clock();
    move(c, rows);
    const double left = c.min_s - (sg4::Engine::get_clock() - begin);
    if (left > 0.0) sg4::this_actor::sleep_for(left);
  }

  void move(const Collective& c, const std::vector<size_t>& rows) {
    const SparseTraffic& t = *c.traffic;
    const std::vector<int32_t>& src = c.transpose ? t.dst : t.src;
    const std::vector<int32_t>& dst = c.transpose ? t.src : t.dst;
    if (cfg.fidelity == Fidelity::kFlow) {
      std::vector<sg4::CommPtr> comms;
      comms.reserve(rows.size() * (c.to_peer ? 2 : 1));
      for (size_t k : rows) {
        if (c.to_peer) {
          comms.push_back(sg4::Comm::sendto_async(nets[src[k]], peers[src[k]], t.bytes[k] * c.scale));
          comms.push_back(sg4::Comm::sendto_async(peers[src[k]], nets[src[k]], t.bytes[k] * c.scale));
        } else {
          comms.push_back(sg4::Comm::sendto_async(nets[src[k]], nets[dst[k]], t.bytes[k] * c.scale));
        }
      }
      sg4::Comm::wait_all(comms);
      return;
    }
    if (c.to_peer) {
      // Each rank and its peer exchange the same bytes: a ptask over the rank/peer pairs.
      std::vector<sg4::Host*> hs;
      for (size_t k : rows) {
        hs.push_back(nets[src[k]]);
        hs.push_back(peers[src[k]]);
      }
      const size_t m = hs.size();
      std::vector<double> flops(m, 0.0), bytes(m * m, 0.0);
      for (size_t i = 0; i < rows.size(); ++i) {
        bytes[(2 * i) * m + 2 * i + 1] = t.bytes[rows[i]] * c.scale;
        bytes[(2 * i + 1) * m + 2 * i] = t.bytes[rows[i]] * c.scale;
      }
      sg4::this_actor::parallel_execute(hs, flops, bytes);
      return;
    }
    // Hand SimGrid only the hosts that take part.
    std::vector<int> index(n, -1);
    std::vector<sg4::Host*> hs;
    for (size_t k : rows) {
      for (int x : {src[k], dst[k]}) {
        if (index[x] < 0) {
          index[x] = static_cast<int>(hs.size());
          hs.push_back(nets[x]);
        }
      }
    }
    const size_t m = hs.size();
    std::vector<double> flops(m, 0.0), bytes(m * m, 0.0);
    for (size_t k : rows)
      bytes[static_cast<size_t>(index[src[k]]) * m + index[dst[k]]] += t.bytes[k] * c.scale;
    sg4::this_actor::parallel_execute(hs, flops, bytes);
  }

  void run_collective(uint32_t id, const Op& op, int r) {
    const Collective& c = g->collectives()[op.collective];
    const SparseTraffic& t = *c.traffic;
    hold(r, c.sms);
    if (c.p2p) {
      std::vector<size_t> rows;
      const std::vector<int32_t>& src = c.transpose ? t.dst : t.src;
      for (size_t k = 0; k < t.size(); ++k)
        if (src[k] == r) rows.push_back(k);
      if (c.launch_s > 0.0) sg4::this_actor::sleep_for(c.launch_s);
      transfer(c, rows);
      if (c.tail_s > 0.0) sg4::this_actor::sleep_for(c.tail_s);
    } else if (++arrived[op.collective] == n) {
      if (c.launch_s > 0.0) sg4::this_actor::sleep_for(c.launch_s);
      std::vector<size_t> rows(t.size());
      for (size_t k = 0; k < rows.size(); ++k) rows[k] = k;
      transfer(c, rows);
      if (c.tail_s > 0.0) sg4::this_actor::sleep_for(c.tail_s);
      coll_done[op.collective] = 1;
      for (int x = 0; x < n; ++x) {
        if (x == r) continue;
        mu[x]->lock();
        cv[x]->notify_all();
        mu[x]->unlock();
      }
    } else {
      std::unique_lock<sg4::Mutex> lock(*mu[r]);
      while (!coll_done[op.collective]) cv[r]->wait(lock);
    }
    hold(r, -c.sms);
    finish(id, r);
  }

  void stream_actor(int r, const std::vector<uint32_t>& program) {
    for (uint32_t id : program) {
      const Op& op = g->ops()[id];
      wait_deps(op, r);
      out->start[static_cast<size_t>(id) * n + r] = sg4::Engine::get_clock() - t0;
      if (op.collective >= 0) {
        run_collective(id, op, r);
        continue;
      }
      const double s = g->seconds(id, r);
      if (s > 0.0) sg4::this_actor::execute(s * kHostSpeed);
      finish(id, r);
    }
  }
};

StepEngine::StepEngine(const EngineConfig& config) : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.cfg = config;
  if (config.fidelity == Fidelity::kFlow && config.fabric.num_ranks > kMaxFlowRanks) {
    throw InputError("--fidelity", "flow",
                     "per-flow simulation is limited to " + std::to_string(kMaxFlowRanks) + " ranks (got " +
                         std::to_string(config.fabric.num_ranks) +
                         "): its cost grows with the square of concurrent flows; use ptask");
  }
  if (config.peers && !config.fabric.has_scale_out) {
    throw InputError("--pp", "",
                     "pipeline stages exchange activations over the NIC, and topology " +
                         config.fabric.topology_name + " has no scale-out network");
  }
  RACKEP_CHECK(config.num_sms >= 2, "StepEngine: a GPU needs at least 2 SMs");
  if (g_engine_created) {
    throw InputError("--fidelity", to_string(config.fidelity),
                     "a SimGrid engine already exists in this process (SimGrid 3.32 allows one per process)");
  }
  g_engine_created = true;
  int argc = 1;
  char arg0[] = "rackep";
  char* argv[] = {arg0, nullptr};
  m.engine = std::make_unique<sg4::Engine>(&argc, argv);
  xbt_log_control_set("root.thresh:warning");
  if (config.fidelity == Fidelity::kPtask) {
    sg4::Engine::set_config("host/model:ptask_L07");
  } else {
    sg4::Engine::set_config("network/model:CM02");
    sg4::Engine::set_config("network/crosstraffic:0");
    sg4::Engine::set_config("network/TCP-gamma:0");
  }
  m.build_platform();
}

StepEngine::~StepEngine() = default;

StepResult StepEngine::run(const StepGraph& graph) {
  Impl& m = *impl_;
  RACKEP_CHECK(graph.num_ranks() == m.cfg.fabric.num_ranks,
               "StepEngine::run: graph does not match the fabric");
  RACKEP_CHECK(!graph.has_peer_traffic() || m.cfg.peers, "StepEngine::run: PP sends need peer hosts");
  const int n = graph.num_ranks();
  const size_t num_ops = graph.ops().size();
  StepResult out;
  out.start.assign(num_ops * n, 0.0);
  out.end.assign(num_ops * n, 0.0);
  m.g = &graph;
  m.n = n;
  m.out = &out;
  m.t0 = sg4::Engine::get_clock();
  m.done.assign(num_ops * n, 0);
  m.held_sms.assign(n, 0);
  m.arrived.assign(graph.collectives().size(), 0);
  m.coll_done.assign(graph.collectives().size(), 0);
  m.cv.clear();
  m.mu.clear();
  for (int r = 0; r < n; ++r) {
    m.cv.push_back(sg4::ConditionVariable::create());
    m.mu.push_back(sg4::Mutex::create());
  }
  std::vector<std::vector<uint32_t>> programs(kNumStreams);
  for (uint32_t id = 0; id < num_ops; ++id) programs[graph.ops()[id].stream].push_back(id);
  for (int r = 0; r < n; ++r) {
    for (int s = 0; s < kNumStreams; ++s) {
      if (programs[s].empty()) continue;
      const std::vector<uint32_t>* prog = &programs[s];
      sg4::Actor::create("r" + std::to_string(r) + "-" + stream_name(s), m.hosts[r],
                         [&m, r, prog] { m.stream_actor(r, *prog); });
    }
  }
  m.engine->run();
  for (int r = 0; r < n; ++r) {
    for (size_t id = 0; id < num_ops; ++id) {
      if (!m.done[id * n + r]) {
        RACKEP_CHECK(false, "simulation deadlock: operation " +
                                std::string(phase_name(graph.ops()[id].phase)) + " of rank " +
                                std::to_string(r) + " never ran (a dependency cycle in the schedule)");
      }
    }
  }
  double span = 0.0;
  for (double e : out.end) span = std::max(span, e);
  out.span_s = span;
  m.g = nullptr;
  m.out = nullptr;
  return out;
}

nlohmann::json StepEngine::describe() const {
  const Impl& m = *impl_;
  nlohmann::json j = {{"fidelity", to_string(m.cfg.fidelity)}, {"fabric", fabric_to_json(m.cfg.fabric)}};
  j["simgrid_config"] =
      m.cfg.fidelity == Fidelity::kPtask
          ? nlohmann::json::array({"host/model:ptask_L07"})
          : nlohmann::json::array({"network/model:CM02", "network/crosstraffic:0", "network/TCP-gamma:0"});
  j["ptask_compression"] = m.cfg.compress && m.cfg.fidelity == Fidelity::kPtask;
  j["sms_per_gpu"] = m.cfg.num_sms;
  nlohmann::json hosts = nlohmann::json::array();
  for (const sg4::Host* h : m.hosts)
    hosts.push_back({{"name", h->get_name()}, {"pstates", h->get_pstate_count()}});
  for (const sg4::Host* h : m.nets) hosts.push_back({{"name", h->get_name()}, {"network_endpoint", true}});
  for (const sg4::Host* h : m.peers) hosts.push_back({{"name", h->get_name()}, {"pipeline_peer", true}});
  j["hosts"] = hosts;
  nlohmann::json links = nlohmann::json::array();
  std::vector<sg4::Link*> all = m.engine->get_all_links();
  std::sort(all.begin(), all.end(),
            [](const sg4::Link* a, const sg4::Link* b) { return a->get_name() < b->get_name(); });
  for (const sg4::Link* l : all) {
    const char* policy = "shared";
    switch (l->get_sharing_policy()) {
      case sg4::Link::SharingPolicy::FATPIPE:
        policy = "fatpipe";
        break;
      case sg4::Link::SharingPolicy::SPLITDUPLEX:
        policy = "splitduplex";
        break;
      default:
        break;
    }
    links.push_back({{"name", l->get_name()},
                     {"bandwidth_bytes_per_s", l->get_bandwidth()},
                     {"latency_s", l->get_latency()},
                     {"sharing", policy}});
  }
  j["links"] = links;
  nlohmann::json routes = nlohmann::json::array();
  auto add_route = [&](const sg4::Host* a, const sg4::Host* b) {
    std::vector<sg4::Link*> path;
    double latency = 0.0;
    a->route_to(b, path, &latency);
    nlohmann::json names = nlohmann::json::array();
    for (const sg4::Link* l : path) names.push_back(l->get_name());
    routes.push_back(
        {{"src", a->get_name()}, {"dst", b->get_name()}, {"links", names}, {"latency_s", latency}});
  };
  const Fabric& f = m.cfg.fabric;
  if (f.num_ranks > 1) add_route(m.nets[0], m.nets[1]);
  if (f.num_domains() > 1) add_route(m.nets[0], m.nets[f.domain_size]);
  if (!m.peers.empty()) add_route(m.nets[0], m.peers[0]);
  j["example_routes"] = routes;
  return j;
}

}  // namespace rackep::sim
