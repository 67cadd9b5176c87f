// A CPU tensor over memory the caller owns, with a callback when torch frees it.
//
// tch's Tensor::from_blob takes no deleter (the memory must simply outlive every tensor that
// views it); at::from_blob takes one. src/buffer_pool.rs uses it to hand out batches over
// buffers that come back to it when the consumer's last reference to the batch dies.

#include <ATen/ops/from_blob.h>

#include <cstddef>
#include <cstdint>

extern "C" {

// A new handle on a contiguous CPU tensor of `dims` and scalar type `scalar_type` over
// `data`, or null when torch fails. torch calls `release(ctx)` once, on whichever thread
// frees the storage. On failure `release` may or may not have run, so the caller gives
// `data` and `ctx` away either way (a failure can leak them, never free them twice).
at::Tensor* q2l_tensor_over(void* data, const int64_t* dims, size_t ndims, int scalar_type,
                            void (*release)(void*), void* ctx) noexcept {
  try {
    auto options = at::TensorOptions()
                       .dtype(static_cast<at::ScalarType>(scalar_type))
                       .device(at::kCPU);
    auto tensor = at::from_blob(
        data, at::IntArrayRef(dims, ndims), [release, ctx](void*) { release(ctx); }, options);
    return new at::Tensor(std::move(tensor));
  } catch (...) {
    return nullptr;
  }
}

}  // extern "C"
