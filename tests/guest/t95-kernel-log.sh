# Nothing in the kernel log that says the kernel side went wrong.
check "no warning, oops or hung task in the kernel log" sh -c "! dmesg | grep -E 'WARNING:|BUG:|Oops|blocked for more than|refcount_t|broken:|seccomp: system call|allocation failure'"
