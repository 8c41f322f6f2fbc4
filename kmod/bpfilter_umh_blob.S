/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The helper, statically linked, carried inside the module. Init data: the
 * module copies it into a shmem file at load time, then the kernel frees it.
 * BPFILTER_UMH_PATH is the built helper's absolute path (see Kbuild).
 */
	.section .init.rodata, "a"
	.global bpfilter_umh_blob_start
bpfilter_umh_blob_start:
	.incbin BPFILTER_UMH_PATH
	.global bpfilter_umh_blob_end
bpfilter_umh_blob_end:
