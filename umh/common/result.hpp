// Errors as values: a Result<T> holds either a T or an Error (errno plus a reason).
#pragma once

#include <cerrno>
#include <string>
#include <utility>
#include <variant>

namespace bpfilter
{

// What went wrong: the errno the caller gets, and a line for the log that says why.
struct Error {
	int errnum = EINVAL;
	std::string message;
};

inline Error make_error(int errnum, std::string message)
{
	return Error{errnum, std::move(message)};
}

template <typename T> class [[nodiscard]] Result
{
public:
	Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}
	Result(Error error) : v_(std::in_place_index<1>, std::move(error)) {}

	bool ok() const { return v_.index() == 0; }
	explicit operator bool() const { return ok(); }

	T &value() & { return std::get<0>(v_); }
	const T &value() const & { return std::get<0>(v_); }
	T &&value() && { return std::get<0>(std::move(v_)); }
	T &operator*() & { return value(); }
	const T &operator*() const & { return value(); }
	T *operator->() { return &value(); }
	const T *operator->() const { return &value(); }

	const Error &error() const { return std::get<1>(v_); }

private:
	std::variant<T, Error> v_;
};

// Result<void>: success, or an Error.
class [[nodiscard]] Status
{
public:
	Status() = default;
	Status(Error error) : error_(std::move(error)), failed_(true) {}

	bool ok() const { return !failed_; }
	explicit operator bool() const { return ok(); }
	const Error &error() const { return error_; }

private:
	Error error_;
	bool failed_ = false;
};

} // namespace bpfilter

// Propagate an error out of the enclosing function.
#define BF_TRY(expr)                              \
	do {                                      \
		auto &&bf_try_r_ = (expr);        \
		if (!bf_try_r_.ok())              \
			return bf_try_r_.error(); \
	} while (0)
