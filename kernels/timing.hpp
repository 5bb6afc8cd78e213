// File: kernels/timing.hpp
// Host helpers of the drivers: an owning device buffer, CUDA-event timers, and a set of per-rank streams with
// explicit join/fork points (no hidden synchronisation: every wait is a cudaStreamWaitEvent the caller asked
// for). Usage:
//   DeviceBuffer<int32_t> ids(host_ids);  launch(ids.get());  std::vector<int32_t> back = ids.download(n);
//   EventTimer t(stream); t.start(); ...; t.stop(); double ms = t.ms();   // ms() synchronises on the stop
//   event StreamSet set(streams); PhaseTimer p(set); p.start(); ...launch on every stream...; p.stop();
//   p.max_ms();
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <vector>

#include "kernels/check.hpp"

namespace rackep::kernels {

template <typename T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t count) { resize(count); }
  explicit DeviceBuffer(const std::vector<T>& host) { assign(host); }
  ~DeviceBuffer() { cudaFree(ptr_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  /// Grows to at least `count` elements (contents are not kept when it grows).
  void resize(size_t count) {
    if (count <= cap_) {
      size_ = count;
      return;
    }
    cudaFree(ptr_);
    ptr_ = nullptr;
    cap_ = size_ = 0;
    RACKEP_CUDA_CHECK(cudaMalloc(&ptr_, sizeof(T) * std::max<size_t>(count, 1)));
    cap_ = size_ = count;
  }
  /// Synchronous upload (resizes).
  void assign(const std::vector<T>& host) {
    resize(std::max<size_t>(host.size(), 1));
    if (!host.empty())
      RACKEP_CUDA_CHECK(cudaMemcpy(ptr_, host.data(), sizeof(T) * host.size(), cudaMemcpyHostToDevice));
  }
  /// Synchronous download of the first `count` elements.
  std::vector<T> download(size_t count) const {
    std::vector<T> out(count);
    if (count > 0) RACKEP_CUDA_CHECK(cudaMemcpy(out.data(), ptr_, sizeof(T) * count, cudaMemcpyDeviceToHost));
    return out;
  }
  T* get() const { return ptr_; }
  size_t size() const { return size_; }
  size_t bytes() const { return sizeof(T) * size_; }

 private:
  T* ptr_ = nullptr;
  size_t size_ = 0;
  size_t cap_ = 0;
};

/// Synchronous download of `bytes` bytes at a device address.
inline std::vector<uint8_t> download_bytes(const void* device_ptr, int64_t bytes) {
  std::vector<uint8_t> out(static_cast<size_t>(bytes));
  if (bytes > 0) RACKEP_CUDA_CHECK(cudaMemcpy(out.data(), device_ptr, out.size(), cudaMemcpyDeviceToHost));
  return out;
}

class EventTimer {
 public:
  explicit EventTimer(cudaStream_t stream) : stream_(stream) {
    RACKEP_CUDA_CHECK(cudaEventCreate(&start_));
    RACKEP_CUDA_CHECK(cudaEventCreate(&stop_));
  }
  ~EventTimer() {
    cudaEventDestroy(start_);
    cudaEventDestroy(stop_);
  }
  EventTimer(const EventTimer&) = delete;
  EventTimer& operator=(const EventTimer&) = delete;
  void start() { RACKEP_CUDA_CHECK(cudaEventRecord(start_, stream_)); }
  void stop() { RACKEP_CUDA_CHECK(cudaEventRecord(stop_, stream_)); }
  /// Milliseconds between start and stop; waits for the stop event.
  double ms() const {
    RACKEP_CUDA_CHECK(cudaEventSynchronize(stop_));
    float v = 0.0f;
    RACKEP_CUDA_CHECK(cudaEventElapsedTime(&v, start_, stop_));
    return v;
  }

 private:
  cudaStream_t stream_;
  cudaEvent_t start_ = nullptr;
  cudaEvent_t stop_ = nullptr;
};

/// The streams of the ranks of one process.
class StreamSet {
 public:
  explicit StreamSet(std::vector<cudaStream_t> streams)
      : streams_(std::move(streams)), events_(streams_.size()) {
    for (auto& e : events_) RACKEP_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
  }
  ~StreamSet() {
    for (auto& e : events_) cudaEventDestroy(e);
  }
  StreamSet(const StreamSet&) = delete;
  StreamSet& operator=(const StreamSet&) = delete;
  size_t size() const { return streams_.size(); }
  cudaStream_t operator[](size_t i) const { return streams_[i]; }
  /// Stream `root` waits for every stream, then every stream waits for `root` (2N waits, no host sync).
  void join_fork(size_t root) {
    for (size_t i = 0; i < streams_.size(); ++i) {
      if (i == root) continue;
      RACKEP_CUDA_CHECK(cudaEventRecord(events_[i], streams_[i]));
      RACKEP_CUDA_CHECK(cudaStreamWaitEvent(streams_[root], events_[i], 0));
    }
    RACKEP_CUDA_CHECK(cudaEventRecord(events_[root], streams_[root]));
    for (size_t i = 0; i < streams_.size(); ++i)
      if (i != root) RACKEP_CUDA_CHECK(cudaStreamWaitEvent(streams_[i], events_[root], 0));
  }
  /// Host waits for every stream.
  void sync_all() {
    for (cudaStream_t s : streams_) RACKEP_CUDA_CHECK(cudaStreamSynchronize(s));
  }

 private:
  std::vector<cudaStream_t> streams_;
  std::vector<cudaEvent_t> events_;
};

/// One phase timed on every stream of a set (or on one): max over streams of stop - start.
class PhaseTimer {
 public:
  explicit PhaseTimer(const StreamSet& set) : set_(set) {
    for (size_t i = 0; i < set.size(); ++i) timers_.push_back(std::make_unique<EventTimer>(set[i]));
  }
  void start() {
    for (auto& t : timers_) t->start();
    used_.assign(timers_.size(), true);
  }
  void stop() {
    for (auto& t : timers_) t->stop();
  }
  void start_on(size_t i) {
    timers_[i]->start();
    used_.assign(timers_.size(), false);
    used_[i] = true;
  }
  void stop_on(size_t i) { timers_[i]->stop(); }
  double max_ms() const {
    double m = 0.0;
    for (size_t i = 0; i < timers_.size(); ++i)
      if (i < used_.size() && used_[i]) m = std::max(m, timers_[i]->ms());
    return m;
  }

 private:
  const StreamSet& set_;
  std::vector<std::unique_ptr<EventTimer>> timers_;
  std::vector<bool> used_;
};

}  // namespace rackep::kernels
