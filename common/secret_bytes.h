// SecretBytes: an owned byte buffer for key material and serialized TLS sessions.
//
// The contents are wiped with OPENSSL_cleanse when the buffer is destroyed, assigned over or
// cleared, so a master secret does not outlive the object that carried it. The type is
// move-only: a copy of a secret is made on purpose with Clone(), never by accident.
//
// Thread-safety: like std::string, a const SecretBytes may be read from many threads; a
// mutable one belongs to one thread at a time.
#ifndef TLSCACHE_COMMON_SECRET_BYTES_H_
#define TLSCACHE_COMMON_SECRET_BYTES_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace tlscache {

class SecretBytes {
 public:
  SecretBytes() = default;
  explicit SecretBytes(absl::string_view bytes);
  SecretBytes(const uint8_t* data, size_t size);
  // `size` zero bytes, to be filled through mutable_data().
  explicit SecretBytes(size_t size);
  ~SecretBytes();

  SecretBytes(SecretBytes&& other) noexcept;
  SecretBytes& operator=(SecretBytes&& other) noexcept;
  SecretBytes(const SecretBytes&) = delete;
  SecretBytes& operator=(const SecretBytes&) = delete;

  SecretBytes Clone() const { return SecretBytes(view()); }

  const uint8_t* data() const { return data_; }
  uint8_t* mutable_data() { return data_; }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  absl::string_view view() const {
    return absl::string_view(reinterpret_cast<const char*>(data_), size_);
  }

  // Wipes and releases the contents.
  void Clear();

 private:
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// Wipes the bytes of a std::string that held a secret (a protobuf bytes field, a reply
// buffer) and empties it.
void CleanseString(std::string* s);

}  // namespace tlscache

#endif  // TLSCACHE_COMMON_SECRET_BYTES_H_
