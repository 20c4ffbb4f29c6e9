/*
 * context_x86_64.S — green thread context switch for x86-64 System V.
 *
 * A suspended context is its stack pointer; below the return address its stack holds
 * rbp, rbx, r12-r15 and one 8-byte slot with MXCSR (low 4 bytes) and the x87 control
 * word (next 2). Caller-saved registers need no saving: green_ctx_swap is a call.
 * No system call. CFI lets debuggers unwind through a switch, and green_ctx_start ends
 * the unwind at the green thread's first frame.
 */
    .text

/* void *green_ctx_swap(green_ctx_t *from, green_ctx_t *to, void *value) */
    .globl  green_ctx_swap
    .hidden green_ctx_swap
    .type   green_ctx_swap, @function
    .p2align 4
green_ctx_swap:
    .cfi_startproc
    pushq   %rbp
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset %rbp, 0
    pushq   %rbx
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset %rbx, 0
    pushq   %r12
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset %r12, 0
    pushq   %r13
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset %r13, 0
    pushq   %r14
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset %r14, 0
    pushq   %r15
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset %r15, 0
    subq    $8, %rsp
    .cfi_adjust_cfa_offset 8
    stmxcsr (%rsp)
    fnstcw  4(%rsp)
    movq    56(%rsp), %r8   /* our return address */
    movq    %rsp, (%rdi)
    /* From here the frame layout is the same on the target's stack, so the CFI
     * above describes it as well. */
    movq    (%rsi), %rsp
    ldmxcsr (%rsp)
    fldcw   4(%rsp)
    addq    $8, %rsp
    .cfi_adjust_cfa_offset -8
    popq    %r15
    .cfi_adjust_cfa_offset -8
    .cfi_restore %r15
    popq    %r14
    .cfi_adjust_cfa_offset -8
    .cfi_restore %r14
    popq    %r13
    .cfi_adjust_cfa_offset -8
    .cfi_restore %r13
    popq    %r12
    .cfi_adjust_cfa_offset -8
    .cfi_restore %r12
    popq    %rbx
    .cfi_adjust_cfa_offset -8
    .cfi_restore %rbx
    popq    %rbp
    .cfi_adjust_cfa_offset -8
    .cfi_restore %rbp
    movq    %rdx, %rax
    /* The return-stack predictor expects our own caller. When the target returns to
     * the same place (green threads parked by the same code, the common case under
     * the hub), `ret` is predicted right and keeps that stack in step. Elsewhere (two
     * green threads switching from different places, a ping-pong) `ret` would
     * mispredict every time, and an indirect jump, which the branch predictor learns,
     * costs half as much. */
    cmpq    (%rsp), %r8
    jne     1f
    ret
1:  popq    %rcx
    .cfi_adjust_cfa_offset -8
    .cfi_register %rip, %rcx
    jmpq    *%rcx
    .cfi_endproc
    .size   green_ctx_swap, .-green_ctx_swap

/* First code a new context runs: entry (in r12) gets the handed-over value (in rax). */
    .type   green_ctx_start, @function
    .p2align 4
green_ctx_start:
    .cfi_startproc
    .cfi_undefined %rip
    movq    %rax, %rdi
    callq   *%r12
    ud2
    .cfi_endproc
    .size   green_ctx_start, .-green_ctx_start

/* void green_ctx_make(green_ctx_t *c, void *top, void (*entry)(void *)) */
    .globl  green_ctx_make
    .hidden green_ctx_make
    .type   green_ctx_make, @function
    .p2align 4
green_ctx_make:
    .cfi_startproc
    andq    $-16, %rsi
    leaq    -64(%rsi), %rax     /* after the 64 bytes are popped, rsp = top (aligned) */
    stmxcsr (%rax)
    fnstcw  4(%rax)
    movq    $0, 8(%rax)         /* r15 */
    movq    $0, 16(%rax)        /* r14 */
    movq    $0, 24(%rax)        /* r13 */
    movq    %rdx, 32(%rax)      /* r12 = entry */
    movq    $0, 40(%rax)        /* rbx */
    movq    $0, 48(%rax)        /* rbp: ends frame-pointer walks */
    leaq    green_ctx_start(%rip), %rcx
    movq    %rcx, 56(%rax)      /* return address of the first swap */
    movq    %rax, (%rdi)
    ret
    .cfi_endproc
    .size   green_ctx_make, .-green_ctx_make

/* void *green_ctx_sp(const green_ctx_t *c) */
    .globl  green_ctx_sp
    .hidden green_ctx_sp
    .type   green_ctx_sp, @function
    .p2align 4
green_ctx_sp:
    .cfi_startproc
    movq    (%rdi), %rax
    ret
    .cfi_endproc
    .size   green_ctx_sp, .-green_ctx_sp

    .section .note.GNU-stack,"",@progbits
