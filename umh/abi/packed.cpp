// A stored table kept compressed while it is in force (abi::PackedTable).
#include <zstd.h>

#include <memory>

#include "abi/table.hpp"

namespace bpfilter::abi
{

// zstd's fastest level: a 100k-rule blocklist (15 MiB) packs to well under 1 MiB in tens of
// milliseconds, and unpacks faster still.
constexpr int pack_level = 1;

Result<PackedTable> pack(StoredTable table)
{
	PackedTable p;
	p.size = table.entries.size();
	// Not zeroed: only the pages zstd writes become resident.
	const size_t bound = ZSTD_compressBound(p.size);
	auto buf = std::make_unique_for_overwrite<uint8_t[]>(bound);
	const size_t n = ZSTD_compress(buf.get(), bound, table.entries.data(), p.size, pack_level);
	if (ZSTD_isError(n))
		return make_error(ENOMEM, std::string("compressing the stored table: ") +
						  ZSTD_getErrorName(n));
	p.packed.assign(buf.get(), buf.get() + n);
	table.entries = std::vector<uint8_t>();
	p.meta = std::move(table);
	return p;
}

Result<StoredTable> unpack(const PackedTable &table)
{
	StoredTable t = table.meta;
	t.entries.resize(table.size);
	const size_t n = ZSTD_decompress(t.entries.data(), t.entries.size(), table.packed.data(),
					 table.packed.size());
	if (ZSTD_isError(n) || n != table.size)
		return make_error(
			EIO, "the stored table does not unpack: " +
				     std::string(ZSTD_isError(n) ? ZSTD_getErrorName(n) : "short"));
	return t;
}

} // namespace bpfilter::abi
