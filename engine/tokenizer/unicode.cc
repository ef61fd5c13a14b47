// UTF-8 helpers, the GPT-2 byte <-> unicode mapping and ICU normalization.
#include <unicode/locid.h>
#include <unicode/normalizer2.h>
#include <unicode/uchar.h>
#include <unicode/unistr.h>

#include <array>
#include <unordered_map>

#include "absl/strings/str_cat.h"
#include "engine/tokenizer/internal.h"

namespace laserd::tokenizer::internal {

int Utf8Len(unsigned char lead) {
  if (lead < 0x80) return 1;
  if ((lead & 0xE0) == 0xC0) return 2;
  if ((lead & 0xF0) == 0xE0) return 3;
  if ((lead & 0xF8) == 0xF0) return 4;
  return 1;
}

bool IsValidUtf8(std::string_view s) {
  size_t i = 0;
  const size_t n = s.size();
  while (i < n) {
    const unsigned char c = s[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    int len;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > n) return false;
    for (int k = 1; k < len; ++k) {
      const unsigned char cc = s[i + k];
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    i += len;
  }
  return true;
}

void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

uint32_t NextCodepoint(std::string_view s, size_t* pos) {
  const unsigned char c = s[*pos];
  int len = Utf8Len(c);
  if (*pos + len > s.size()) len = 1;
  uint32_t cp;
  switch (len) {
    case 1:
      cp = c;
      break;
    case 2:
      cp = c & 0x1F;
      break;
    case 3:
      cp = c & 0x0F;
      break;
    default:
      cp = c & 0x07;
      break;
  }
  for (int k = 1; k < len; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[*pos + k]) & 0x3F);
  *pos += len;
  return cp;
}

namespace {

struct ByteTables {
  std::array<std::string, 256> byte_to_utf8;
  std::unordered_map<uint32_t, uint8_t> cp_to_byte;
  ByteTables() {
    std::array<bool, 256> direct{};
    for (int b = '!'; b <= '~'; ++b) direct[b] = true;
    for (int b = 0xA1; b <= 0xAC; ++b) direct[b] = true;
    for (int b = 0xAE; b <= 0xFF; ++b) direct[b] = true;
    uint32_t n = 0;
    for (int b = 0; b < 256; ++b) {
      const uint32_t cp = direct[b] ? static_cast<uint32_t>(b) : 256 + n++;
      AppendUtf8(cp, &byte_to_utf8[b]);
      cp_to_byte[cp] = static_cast<uint8_t>(b);
    }
  }
};

const ByteTables& Tables() {
  static const ByteTables* t = new ByteTables();
  return *t;
}

}  // namespace

const std::string& ByteToUnicode(uint8_t b) { return Tables().byte_to_utf8[b]; }

std::string ByteLevelEncode(std::string_view raw) {
  std::string out;
  out.reserve(raw.size() * 2);
  const auto& t = Tables();
  for (unsigned char c : raw) out += t.byte_to_utf8[c];
  return out;
}

std::string ByteLevelDecode(std::string_view text) {
  // HF ByteLevel decoder: a token whose characters are all stand-ins becomes
  // their bytes; any other token is passed through unchanged.
  const auto& t = Tables();
  std::string out;
  size_t pos = 0;
  while (pos < text.size()) {
    const uint32_t cp = NextCodepoint(text, &pos);
    auto it = t.cp_to_byte.find(cp);
    if (it == t.cp_to_byte.end()) return std::string(text);
    out.push_back(static_cast<char>(it->second));
  }
  return out;
}

absl::StatusOr<std::string> Normalize(std::string_view s, NormForm form) {
  UErrorCode status = U_ZERO_ERROR;
  const icu::Normalizer2* norm = nullptr;
  switch (form) {
    case NormForm::kNFC:
      norm = icu::Normalizer2::getNFCInstance(status);
      break;
    case NormForm::kNFD:
      norm = icu::Normalizer2::getNFDInstance(status);
      break;
    case NormForm::kNFKC:
      norm = icu::Normalizer2::getNFKCInstance(status);
      break;
    case NormForm::kNFKD:
      norm = icu::Normalizer2::getNFKDInstance(status);
      break;
  }
  if (U_FAILURE(status) || norm == nullptr) {
    return absl::InternalError(absl::StrCat("ICU normalizer unavailable: ", u_errorName(status)));
  }
  const icu::UnicodeString in =
      icu::UnicodeString::fromUTF8(icu::StringPiece(s.data(), static_cast<int32_t>(s.size())));
  const icu::UnicodeString res = norm->normalize(in, status);
  if (U_FAILURE(status)) {
    return absl::InternalError(absl::StrCat("ICU normalization failed: ", u_errorName(status)));
  }
  std::string out;
  res.toUTF8String(out);
  return out;
}

bool IsWhiteSpace(uint32_t cp) { return u_isUWhiteSpace(static_cast<UChar32>(cp)); }

std::string ToLowerUnicode(std::string_view s) {
  icu::UnicodeString u =
      icu::UnicodeString::fromUTF8(icu::StringPiece(s.data(), static_cast<int32_t>(s.size())));
  u.toLower(icu::Locale::getRoot());
  std::string out;
  u.toUTF8String(out);
  return out;
}

std::string StripMarks(std::string_view s) {
  std::string out;
  size_t pos = 0;
  while (pos < s.size()) {
    const size_t start = pos;
    const uint32_t cp = NextCodepoint(s, &pos);
    if (u_charType(static_cast<UChar32>(cp)) == U_NON_SPACING_MARK) continue;
    out.append(s.substr(start, pos - start));
  }
  return out;
}

}  // namespace laserd::tokenizer::internal
