#include "common/secret_bytes.h"

#include <openssl/crypto.h>

#include <cstring>
#include <new>
#include <utility>

namespace tlscache {

SecretBytes::SecretBytes(absl::string_view bytes)
    : SecretBytes(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()) {}

SecretBytes::SecretBytes(const uint8_t* data, size_t size) {
  if (size == 0) return;
  data_ = new uint8_t[size];
  std::memcpy(data_, data, size);
  size_ = size;
}

SecretBytes::SecretBytes(size_t size) {
  if (size == 0) return;
  data_ = new uint8_t[size]();
  size_ = size;
}

SecretBytes::~SecretBytes() { Clear(); }

SecretBytes::SecretBytes(SecretBytes&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}

SecretBytes& SecretBytes::operator=(SecretBytes&& other) noexcept {
  if (this != &other) {
    Clear();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

void SecretBytes::Clear() {
  if (data_ != nullptr) {
    OPENSSL_cleanse(data_, size_);
    delete[] data_;
  }
  data_ = nullptr;
  size_ = 0;
}

void CleanseString(std::string* s) {
  if (s == nullptr || s->empty()) return;
  OPENSSL_cleanse(&(*s)[0], s->size());
  s->clear();
}

}  // namespace tlscache
