/*
 * context_aarch64.S — green thread context switch for AArch64 (AAPCS64).
 *
 * A suspended context is its stack pointer; its stack holds a 176-byte frame:
 *   [sp+0]   x19-x28        [sp+80]  x29 (fp), x30 (lr)
 *   [sp+96]  d8-d15         [sp+160] FPCR, [sp+168] padding (keeps sp 16-aligned)
 * Caller-saved registers need no saving: green_ctx_swap is a call. No system call.
 * CFI lets debuggers and unwinders walk through a switch; green_ctx_start ends the
 * unwind at a green thread's first frame.
 */

/* Branch protection: when the C code is built with -mbranch-protection, mark the entry
 * points as BTI landing pads and say so in the GNU property note, or the linker would
 * silently drop BTI/PAC marking for the whole binary. */
#if defined(__ARM_FEATURE_BTI_DEFAULT) && __ARM_FEATURE_BTI_DEFAULT
#define BTI_C   hint    #34
#define GREEN_FEATURE_BTI 1
#else
#define BTI_C
#define GREEN_FEATURE_BTI 0
#endif
#if defined(__ARM_FEATURE_PAC_DEFAULT) && __ARM_FEATURE_PAC_DEFAULT
#define GREEN_FEATURE_PAC 2
#else
#define GREEN_FEATURE_PAC 0
#endif

    .text

/* void *green_ctx_swap(green_ctx_t *from, green_ctx_t *to, void *value) */
    .globl  green_ctx_swap
    .hidden green_ctx_swap
    .type   green_ctx_swap, %function
    .p2align 4
green_ctx_swap:
    .cfi_startproc
    BTI_C
    sub     sp, sp, #176
    .cfi_def_cfa_offset 176
    stp     x19, x20, [sp, #0]
    stp     x21, x22, [sp, #16]
    stp     x23, x24, [sp, #32]
    stp     x25, x26, [sp, #48]
    stp     x27, x28, [sp, #64]
    stp     x29, x30, [sp, #80]
    .cfi_offset x19, -176
    .cfi_offset x20, -168
    .cfi_offset x21, -160
    .cfi_offset x22, -152
    .cfi_offset x23, -144
    .cfi_offset x24, -136
    .cfi_offset x25, -128
    .cfi_offset x26, -120
    .cfi_offset x27, -112
    .cfi_offset x28, -104
    .cfi_offset x29, -96
    .cfi_offset x30, -88
    stp     d8, d9, [sp, #96]
    stp     d10, d11, [sp, #112]
    stp     d12, d13, [sp, #128]
    stp     d14, d15, [sp, #144]
    .cfi_offset d8, -80
    .cfi_offset d9, -72
    .cfi_offset d10, -64
    .cfi_offset d11, -56
    .cfi_offset d12, -48
    .cfi_offset d13, -40
    .cfi_offset d14, -32
    .cfi_offset d15, -24
    mrs     x9, fpcr
    str     x9, [sp, #160]
    mov     x9, sp
    str     x9, [x0]
    /* From here the frame layout is the same on the target's stack, so the CFI
     * above describes it as well. */
    ldr     x9, [x1]
    mov     sp, x9
    ldr     x9, [sp, #160]
    msr     fpcr, x9
    ldp     d8, d9, [sp, #96]
    ldp     d10, d11, [sp, #112]
    ldp     d12, d13, [sp, #128]
    ldp     d14, d15, [sp, #144]
    ldp     x19, x20, [sp, #0]
    ldp     x21, x22, [sp, #16]
    ldp     x23, x24, [sp, #32]
    ldp     x25, x26, [sp, #48]
    ldp     x27, x28, [sp, #64]
    ldp     x29, x30, [sp, #80]
    add     sp, sp, #176
    .cfi_def_cfa_offset 0
    .cfi_restore x19
    .cfi_restore x20
    .cfi_restore x21
    .cfi_restore x22
    .cfi_restore x23
    .cfi_restore x24
    .cfi_restore x25
    .cfi_restore x26
    .cfi_restore x27
    .cfi_restore x28
    .cfi_restore x29
    .cfi_restore x30
    .cfi_restore d8
    .cfi_restore d9
    .cfi_restore d10
    .cfi_restore d11
    .cfi_restore d12
    .cfi_restore d13
    .cfi_restore d14
    .cfi_restore d15
    mov     x0, x2
    ret
    .cfi_endproc
    .size   green_ctx_swap, .-green_ctx_swap

/* First code a new context runs: the first swap into it "returns" here (x30 in the frame
 * built by green_ctx_make), with sp at the aligned top, entry in x19 and the handed-over
 * value in x0, so entry(value) is a plain call. The nop before the label lies inside
 * this FDE: an unwinder looks up return address - 1, and when green_ctx_swap is about to
 * return here that address must still find ".cfi_undefined x30" (the end of the stack),
 * not the alignment padding after green_ctx_swap. */
    .p2align 4
    .cfi_startproc
    .cfi_undefined x30
    nop
    .type   green_ctx_start, %function
green_ctx_start:
    blr     x19
    brk     #0                      /* entry must never return */
    .cfi_endproc
    .size   green_ctx_start, .-green_ctx_start

/* void green_ctx_make(green_ctx_t *c, void *top, void (*entry)(void *)) */
    .globl  green_ctx_make
    .hidden green_ctx_make
    .type   green_ctx_make, %function
    .p2align 4
green_ctx_make:
    .cfi_startproc
    BTI_C
    and     x1, x1, #~15
    sub     x1, x1, #176
    stp     x2, xzr, [x1, #0]       /* x19 = entry, x20 */
    stp     xzr, xzr, [x1, #16]
    stp     xzr, xzr, [x1, #32]
    stp     xzr, xzr, [x1, #48]
    stp     xzr, xzr, [x1, #64]
    adr     x9, green_ctx_start
    stp     xzr, x9, [x1, #80]      /* x29 = 0 ends fp walks, x30 = start */
    stp     xzr, xzr, [x1, #96]     /* d8-d15 */
    stp     xzr, xzr, [x1, #112]
    stp     xzr, xzr, [x1, #128]
    stp     xzr, xzr, [x1, #144]
    mrs     x9, fpcr                /* the new context inherits the caller's FPCR */
    stp     x9, xzr, [x1, #160]
    str     x1, [x0]
    ret
    .cfi_endproc
    .size   green_ctx_make, .-green_ctx_make

/* void *green_ctx_sp(const green_ctx_t *c) */
    .globl  green_ctx_sp
    .hidden green_ctx_sp
    .type   green_ctx_sp, %function
    .p2align 4
green_ctx_sp:
    .cfi_startproc
    BTI_C
    ldr     x0, [x0]
    ret
    .cfi_endproc
    .size   green_ctx_sp, .-green_ctx_sp

#if GREEN_FEATURE_BTI || GREEN_FEATURE_PAC
    /* GNU_PROPERTY_AARCH64_FEATURE_1_AND: this file is BTI- and PAC-compatible. */
    .pushsection .note.gnu.property, "a"
    .p2align 3
    .long   4                       /* name size */
    .long   16                      /* descriptor size */
    .long   5                       /* NT_GNU_PROPERTY_TYPE_0 */
    .asciz  "GNU"
    .long   0xc0000000              /* GNU_PROPERTY_AARCH64_FEATURE_1_AND */
    .long   4
    .long   GREEN_FEATURE_BTI | GREEN_FEATURE_PAC
    .long   0
    .popsection
#endif

    .section .note.GNU-stack,"",%progbits
