// SimGrid-backed communication models: the platform of DESIGN.md built from a Fabric, and the `ptask` and
// `flow` fidelities (HARDWARE.md §A.3-§A.8).
#include <xbt/log.h>
#include <simgrid/s4u.hpp>

#include <exception>
#include <string>

#include "core/error.hpp"
#include "sim/comm_model.hpp"

namespace rackep::sim {
namespace {

namespace sg4 = simgrid::s4u;

bool g_engine_created = false;  // SimGrid 3.32 supports one engine per process

// Core of a non-blocking fat tree: FATPIPE (no sharing), fast enough never to bind (each flow is already
// limited by its NICs), so it only adds latency.
constexpr double kCoreBytesPerS = 1e15;

class SimGridCommModel final : public CommModel {
 public:
  SimGridCommModel(Fidelity fidelity, const Fabric& fabric, double host_flops_per_s, bool compress)
      : fidelity_(fidelity), fabric_(fabric), compress_(compress && fidelity == Fidelity::kPtask) {
    if (g_engine_created) {
      throw InputError(
          "--fidelity", to_string(fidelity),
          "a SimGrid engine already exists in this process (SimGrid 3.32 allows one per process)");
    }
    g_engine_created = true;
    int argc = 1;
    char arg0[] = "rackep";
    char* argv[] = {arg0, nullptr};
    engine_ = std::make_unique<sg4::Engine>(&argc, argv);
    xbt_log_control_set("root.thresh:warning");
    if (fidelity == Fidelity::kPtask) {
      sg4::Engine::set_config("host/model:ptask_L07");
    } else {
      sg4::Engine::set_config("network/model:CM02");
      sg4::Engine::set_config("network/crosstraffic:0");
      sg4::Engine::set_config("network/TCP-gamma:0");
    }
    build_platform(host_flops_per_s);
  }

  Fidelity fidelity() const override { return fidelity_; }

  void run(const std::function<void()>& body) override {
    std::exception_ptr error;
    sg4::Actor::create("controller", hosts_[0], [&] {
      try {
        body();
      } catch (...) {
        error = std::current_exception();
      }
    });
    engine_->run();
    if (error) std::rethrow_exception(error);
  }

  void phase(const TrafficMatrix& m, std::vector<double>& done_s) override {
    RACKEP_CHECK(m.num_ranks == fabric_.num_ranks, "traffic matrix does not match the platform");
    done_s.assign(fabric_.num_ranks, 0.0);
    if (m.network_bytes() == 0) return;
    if (fidelity_ == Fidelity::kPtask) {
      ptask_phase(compress_ ? compress_traffic(fabric_, m) : m, done_s);
    } else {
      flow_phase(m, done_s);
    }
  }

  nlohmann::json describe() const override {
    nlohmann::json j = {{"fidelity", to_string(fidelity_)}, {"fabric", fabric_to_json(fabric_)}};
    j["simgrid_config"] =
        fidelity_ == Fidelity::kPtask
            ? nlohmann::json::array({"host/model:ptask_L07"})
            : nlohmann::json::array({"network/model:CM02", "network/crosstraffic:0", "network/TCP-gamma:0"});
    j["ptask_compression"] = compress_;
    nlohmann::json hosts = nlohmann::json::array();
    for (const sg4::Host* h : hosts_)
      hosts.push_back({{"name", h->get_name()}, {"speed_flops_per_s", h->get_speed()}});
    j["hosts"] = hosts;
    nlohmann::json links = nlohmann::json::array();
    std::vector<sg4::Link*> all = engine_->get_all_links();
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
    // Example routes, read back from the platform.
    nlohmann::json routes = nlohmann::json::array();
    auto add_route = [&](int a, int b) {
      std::vector<sg4::Link*> path;
      double latency = 0.0;
      hosts_[a]->route_to(hosts_[b], path, &latency);
      nlohmann::json names = nlohmann::json::array();
      for (const sg4::Link* l : path) names.push_back(l->get_name());
      routes.push_back({{"src", hosts_[a]->get_name()},
                        {"dst", hosts_[b]->get_name()},
                        {"links", names},
                        {"latency_s", latency}});
    };
    if (fabric_.num_ranks > 1) add_route(0, 1);
    if (fabric_.num_domains() > 1) add_route(0, fabric_.domain_size);
    j["example_routes"] = routes;
    return j;
  }

 private:
  void build_platform(double host_flops_per_s) {
    const int n = fabric_.num_ranks;
    hosts_.resize(n);
    if (fabric_.num_domains() == 1) {
      // One NVLink domain: a star, one split-duplex port per GPU (HARDWARE.md §A.4).
      sg4::NetZone* zone = sg4::create_star_zone("rack");
      for (int i = 0; i < n; ++i) {
        hosts_[i] = zone->create_host("gpu-" + std::to_string(i), host_flops_per_s);
        sg4::Link* port =
            zone->create_split_duplex_link("nvport-" + std::to_string(i), fabric_.port_bytes_per_s)
                ->set_latency(fabric_.port_latency_s);
        zone->add_route(hosts_[i]->get_netpoint(), nullptr, nullptr, nullptr,
                        {sg4::LinkInRoute(port, sg4::LinkInRoute::Direction::UP)}, true);
      }
      zone->seal();
      return;
    }
    // Several domains: one full zone with explicit per-pair routes, so NVLink and NIC traffic use different
    // ports (HARDWARE.md §A.5 option 1).
    sg4::NetZone* zone = sg4::create_full_zone("cluster");
    std::vector<sg4::Link*> ports(n), nics(n), uplinks;
    for (int i = 0; i < n; ++i) {
      hosts_[i] = zone->create_host("gpu-" + std::to_string(i), host_flops_per_s);
      ports[i] = zone->create_split_duplex_link("nvport-" + std::to_string(i), fabric_.port_bytes_per_s)
                     ->set_latency(fabric_.port_latency_s);
      nics[i] = zone->create_split_duplex_link("nic-" + std::to_string(i), fabric_.nic_bytes_per_s)
                    ->set_latency(fabric_.nic_latency_s);
    }
    if (fabric_.uplink_bytes_per_s > 0.0) {
      for (int d = 0; d < fabric_.num_domains(); ++d) {
        uplinks.push_back(
            zone->create_split_duplex_link("uplink-" + std::to_string(d), fabric_.uplink_bytes_per_s)
                ->set_latency(0));
      }
    }
    sg4::Link* core = zone->create_link("core", kCoreBytesPerS)
                          ->set_latency(fabric_.core_latency_s)
                          ->set_sharing_policy(sg4::Link::SharingPolicy::FATPIPE);
    using Dir = sg4::LinkInRoute::Direction;
    for (int i = 0; i < n; ++i) {
      for (int j = 0; j < n; ++j) {
        if (i == j) continue;
        std::vector<sg4::LinkInRoute> route;
        if (fabric_.same_domain(i, j)) {
          route = {sg4::LinkInRoute(ports[i], Dir::UP), sg4::LinkInRoute(ports[j], Dir::DOWN)};
        } else {
          route.emplace_back(nics[i], Dir::UP);
          if (!uplinks.empty()) route.emplace_back(uplinks[fabric_.domain_of(i)], Dir::UP);
          route.emplace_back(core);
          if (!uplinks.empty()) route.emplace_back(uplinks[fabric_.domain_of(j)], Dir::DOWN);
          route.emplace_back(nics[j], Dir::DOWN);
        }
        zone->add_route(hosts_[i]->get_netpoint(), hosts_[j]->get_netpoint(), nullptr, nullptr, route, false);
      }
    }
    zone->seal();
  }

  void ptask_phase(const TrafficMatrix& m, std::vector<double>& done_s) {
    const int n = fabric_.num_ranks;
    flops_.assign(n, 0.0);
    bytes_.assign(static_cast<size_t>(n) * n, 0.0);
    for (int s = 0; s < n; ++s)
      for (int d = 0; d < n; ++d)
        if (s != d) bytes_[static_cast<size_t>(s) * n + d] = static_cast<double>(m.at(s, d));
    const double start = sg4::Engine::get_clock();
    sg4::this_actor::parallel_execute(hosts_, flops_, bytes_);
    done_s.assign(n, sg4::Engine::get_clock() - start);
  }

  void flow_phase(const TrafficMatrix& m, std::vector<double>& done_s) {
    const int n = fabric_.num_ranks;
    if (mailboxes_.empty()) {
      mailboxes_.resize(static_cast<size_t>(n) * n, nullptr);
      for (int s = 0; s < n; ++s)
        for (int d = 0; d < n; ++d)
          if (s != d)
            mailboxes_[static_cast<size_t>(s) * n + d] =
                sg4::Mailbox::by_name(std::to_string(s) + ">" + std::to_string(d));
    }
    const double start = sg4::Engine::get_clock();
    std::vector<sg4::ActorPtr> actors;
    for (int r = 0; r < n; ++r) {
      actors.push_back(
          sg4::Actor::create("rank-" + std::to_string(r), hosts_[r], [this, &m, &done_s, r, n, start] {
            static int payload = 0;
            std::vector<sg4::CommPtr> comms;
            std::vector<int*> received(n, nullptr);
            for (int d = 0; d < n; ++d) {
              if (d != r && m.at(r, d) > 0) {
                comms.push_back(mailboxes_[static_cast<size_t>(r) * n + d]->put_async(
                    &payload, static_cast<uint64_t>(m.at(r, d))));
              }
            }
            for (int s = 0; s < n; ++s) {
              if (s != r && m.at(s, r) > 0) {
                comms.push_back(mailboxes_[static_cast<size_t>(s) * n + r]->get_async<int>(&received[s]));
              }
            }
            sg4::Comm::wait_all(comms);
            done_s[r] = sg4::Engine::get_clock() - start;
          }));
    }
    for (auto& a : actors) a->join();
  }

  Fidelity fidelity_;
  Fabric fabric_;
  bool compress_;
  std::unique_ptr<sg4::Engine> engine_;
  std::vector<sg4::Host*> hosts_;
  std::vector<sg4::Mailbox*> mailboxes_;
  std::vector<double> flops_;
  std::vector<double> bytes_;
};

}  // namespace

std::unique_ptr<CommModel> make_simgrid_comm_model(Fidelity fidelity, const Fabric& fabric,
                                                   double host_flops_per_s, bool compress) {
  RACKEP_CHECK(fidelity != Fidelity::kAnalytic, "make_simgrid_comm_model: analytic is not SimGrid-backed");
  return std::make_unique<SimGridCommModel>(fidelity, fabric, host_flops_per_s, compress);
}

}  // namespace rackep::sim
