"""Conformance cases tilerun is known to fail, by name, with the reason: this list only shrinks.

``tests/test_conformance.py`` marks each of these ``xfail(strict=True)``: a case
that starts passing fails the suite until it is removed from here. A case not
listed must pass. Every entry says why: dtypes tilerun does not compute in
(float16/float64 arithmetic, the float8/int4/bfloat16/string families),
training-mode randomness, non-tensor inputs, or a feature still missing in
the module that owns the op (3-D Conv, MaxPool's Indices output, uint8 MaxPool).
"""
FLOAT64 = "float64 compute is not supported: tilerun computes in float32 and refuses it at compile"
FLOAT16 = "float16 compute is not supported: tilerun computes in float32 and refuses it at compile"
CONV3D = "3-D Conv is not supported yet (Conv lowers 1-D and 2-D)"
DROPOUT = "training-mode Dropout is random; tilerun runs inference (ONNX Runtime fails these too)"
NOT_TENSOR = "sequence/optional inputs are not tensors; tilerun runs tensors only"

XFAIL = {
    'pytorch-converted/test_Conv3d': CONV3D,
    'pytorch-converted/test_Conv3d_dilated': CONV3D,
    'pytorch-converted/test_Conv3d_dilated_strided': CONV3D,
    'pytorch-converted/test_Conv3d_groups': CONV3D,
    'pytorch-converted/test_Conv3d_no_bias': CONV3D,
    'pytorch-converted/test_Conv3d_stride': CONV3D,
    'pytorch-converted/test_Conv3d_stride_padding': CONV3D,
    'pytorch-operator/test_operator_add_broadcast': FLOAT64,
    'pytorch-operator/test_operator_add_size1_broadcast': FLOAT64,
    'pytorch-operator/test_operator_add_size1_right_broadcast': FLOAT64,
    'pytorch-operator/test_operator_add_size1_singleton_broadcast': FLOAT64,
    'pytorch-operator/test_operator_addconstant': FLOAT64,
    'test_attention_24_qk_matmul_output_mode3_softmax_precision_expanded': FLOAT16,
    'test_attention_3d_causal_bf16_expanded': 'element type BFLOAT16 is not supported (tensor type tilerun does not carry)',
    'test_attention_4d_attn_mask_causal_bf16_expanded': 'element type BFLOAT16 is not supported (tensor type tilerun does not carry)',
    'test_attention_4d_causal_bf16_expanded': 'element type BFLOAT16 is not supported (tensor type tilerun does not carry)',
    'test_attention_4d_causal_fp16_expanded': FLOAT16,
    'test_attention_4d_causal_padded_kv_bf16_expanded': 'element type BFLOAT16 is not supported (tensor type tilerun does not carry)',
    'test_attention_4d_fp16_expanded': FLOAT16,
    'test_attention_4d_gqa_causal_nonpad_decode_fp16_expanded': FLOAT16,
    'test_attention_4d_gqa_with_past_and_present_fp16_expanded': FLOAT16,
    'test_attention_4d_padded_kv_bf16_expanded': 'element type BFLOAT16 is not supported (tensor type tilerun does not carry)',
    'test_attention_local_window_ext_cache_float16_mask_expanded': FLOAT16,
    'test_attention_local_window_gqa_rank4_mask_expanded': FLOAT64,
    'test_cast_BFLOAT16_to_FLOAT':
        'element type BFLOAT16 is not supported (tensor type tilerun does not carry)',
    'test_cast_DOUBLE_to_FLOAT': FLOAT64,
    'test_cast_DOUBLE_to_FLOAT16': FLOAT64,
    'test_cast_FLOAT16_to_DOUBLE': FLOAT16,
    'test_cast_FLOAT16_to_FLOAT': FLOAT16,
    'test_cast_FLOAT16_to_FLOAT4E2M1': FLOAT16,
    'test_cast_FLOAT16_to_FLOAT8E4M3FN': FLOAT16,
    'test_cast_FLOAT16_to_FLOAT8E4M3FNUZ': FLOAT16,
    'test_cast_FLOAT16_to_FLOAT8E5M2': FLOAT16,
    'test_cast_FLOAT16_to_FLOAT8E5M2FNUZ': FLOAT16,
    'test_cast_FLOAT16_to_INT2': FLOAT16,
    'test_cast_FLOAT16_to_INT4': FLOAT16,
    'test_cast_FLOAT16_to_UINT2': FLOAT16,
    'test_cast_FLOAT16_to_UINT4': FLOAT16,
    'test_cast_FLOAT4E2M1_to_FLOAT':
        'element type FLOAT4E2M1 is not supported (tensor type tilerun does not carry)',
    'test_cast_FLOAT4E2M1_to_FLOAT16':
        'element type FLOAT4E2M1 is not supported (tensor type tilerun does not carry)',
    'test_cast_FLOAT8E4M3FNUZ_to_FLOAT':
        'element type FLOAT8E4M3FNUZ is not supported (tensor type tilerun does not carry)',
    'test_cast_FLOAT8E4M3FNUZ_to_FLOAT16':
        'element type FLOAT8E4M3FNUZ is not supported (tensor type tilerun does not carry)',
    'test_cast_FLOAT8E4M3FN_to_FLOAT':
        'element type FLOAT8E4M3FN is not supported (tensor type tilerun does not carry)',
    'test_cast_FLOAT8E4M3FN_to_FLOAT16':
        'element type FLOAT8E4M3FN is not supported (tensor type tilerun does not carry)',
    'test_cast_FLOAT8E5M2FNUZ_to_FLOAT':
        'element type FLOAT8E5M2FNUZ is not supported (tensor type tilerun does not carry)',
    'test_cast_FLOAT8E5M2FNUZ_to_FLOAT16':
        'element type FLOAT8E5M2FNUZ is not supported (tensor type tilerun does not carry)',
    'test_cast_FLOAT8E5M2_to_FLOAT':
        'element type FLOAT8E5M2 is not supported (tensor type tilerun does not carry)',
    'test_cast_FLOAT8E5M2_to_FLOAT16':
        'element type FLOAT8E5M2 is not supported (tensor type tilerun does not carry)',
    'test_cast_FLOAT_to_BFLOAT16':
        'element type BFLOAT16 is not supported (tensor type tilerun does not carry)',
    'test_cast_FLOAT_to_DOUBLE': FLOAT64,
    'test_cast_FLOAT_to_FLOAT16': FLOAT16,
    'test_cast_FLOAT_to_FLOAT4E2M1':
        'element type FLOAT4E2M1 is not supported (tensor type tilerun does not carry)',
    'test_cast_FLOAT_to_FLOAT8E4M3FN':
        'element type FLOAT8E4M3FN is not supported (tensor type tilerun does not carry)',
    'test_cast_FLOAT_to_FLOAT8E4M3FNUZ':
        'element type FLOAT8E4M3FNUZ is not supported (tensor type tilerun does not carry)',
    'test_cast_FLOAT_to_FLOAT8E5M2':
        'element type FLOAT8E5M2 is not supported (tensor type tilerun does not carry)',
    'test_cast_FLOAT_to_FLOAT8E5M2FNUZ':
        'element type FLOAT8E5M2FNUZ is not supported (tensor type tilerun does not carry)',
    'test_cast_FLOAT_to_INT2':
        'element type INT2 is not supported (tensor type tilerun does not carry)',
    'test_cast_FLOAT_to_INT4':
        'element type INT4 is not supported (tensor type tilerun does not carry)',
    'test_cast_FLOAT_to_UINT2':
        'element type UINT2 is not supported (tensor type tilerun does not carry)',
    'test_cast_FLOAT_to_UINT4':
        'element type UINT4 is not supported (tensor type tilerun does not carry)',
    'test_cast_INT2_to_FLOAT':
        'element type INT2 is not supported (tensor type tilerun does not carry)',
    'test_cast_INT2_to_FLOAT16':
        'element type INT2 is not supported (tensor type tilerun does not carry)',
    'test_cast_INT2_to_INT8':
        'element type INT2 is not supported (tensor type tilerun does not carry)',
    'test_cast_INT4_to_FLOAT':
        'element type INT4 is not supported (tensor type tilerun does not carry)',
    'test_cast_INT4_to_FLOAT16':
        'element type INT4 is not supported (tensor type tilerun does not carry)',
    'test_cast_INT4_to_INT8':
        'element type INT4 is not supported (tensor type tilerun does not carry)',
    'test_cast_UINT2_to_FLOAT':
        'element type UINT2 is not supported (tensor type tilerun does not carry)',
    'test_cast_UINT2_to_FLOAT16':
        'element type UINT2 is not supported (tensor type tilerun does not carry)',
    'test_cast_UINT2_to_UINT8':
        'element type UINT2 is not supported (tensor type tilerun does not carry)',
    'test_cast_UINT4_to_FLOAT':
        'element type UINT4 is not supported (tensor type tilerun does not carry)',
    'test_cast_UINT4_to_FLOAT16':
        'element type UINT4 is not supported (tensor type tilerun does not carry)',
    'test_cast_UINT4_to_UINT8':
        'element type UINT4 is not supported (tensor type tilerun does not carry)',
    'test_cast_e8m0_FLOAT16_to_FLOAT8E8M0': FLOAT16,
    'test_cast_e8m0_FLOAT8E8M0_to_FLOAT':
        'element type FLOAT8E8M0 is not supported (tensor type tilerun does not carry)',
    'test_cast_e8m0_FLOAT8E8M0_to_FLOAT16':
        'element type FLOAT8E8M0 is not supported (tensor type tilerun does not carry)',
    'test_cast_e8m0_FLOAT_to_FLOAT8E8M0':
        'element type FLOAT8E8M0 is not supported (tensor type tilerun does not carry)',
    'test_cast_no_saturate_FLOAT16_to_FLOAT8E4M3FN': FLOAT16,
    'test_cast_no_saturate_FLOAT16_to_FLOAT8E4M3FNUZ': FLOAT16,
    'test_cast_no_saturate_FLOAT16_to_FLOAT8E5M2': FLOAT16,
    'test_cast_no_saturate_FLOAT16_to_FLOAT8E5M2FNUZ': FLOAT16,
    'test_cast_no_saturate_FLOAT_to_FLOAT8E4M3FN':
        'element type FLOAT8E4M3FN is not supported (tensor type tilerun does not carry)',
    'test_cast_no_saturate_FLOAT_to_FLOAT8E4M3FNUZ':
        'element type FLOAT8E4M3FNUZ is not supported (tensor type tilerun does not carry)',
    'test_cast_no_saturate_FLOAT_to_FLOAT8E5M2':
        'element type FLOAT8E5M2 is not supported (tensor type tilerun does not carry)',
    'test_cast_no_saturate_FLOAT_to_FLOAT8E5M2FNUZ':
        'element type FLOAT8E5M2FNUZ is not supported (tensor type tilerun does not carry)',
    'test_castlike_BFLOAT16_to_FLOAT': 'element type BFLOAT16 is not supported (tensor type tilerun does not carry)',
    'test_castlike_BFLOAT16_to_FLOAT_expanded':
        'element type BFLOAT16 is not supported (tensor type tilerun does not carry)',
    'test_castlike_DOUBLE_to_FLOAT': FLOAT64,
    'test_castlike_DOUBLE_to_FLOAT16': FLOAT64,
    'test_castlike_DOUBLE_to_FLOAT16_expanded': FLOAT64,
    'test_castlike_DOUBLE_to_FLOAT_expanded': FLOAT64,
    'test_castlike_FLOAT16_to_DOUBLE': FLOAT16,
    'test_castlike_FLOAT16_to_DOUBLE_expanded': FLOAT16,
    'test_castlike_FLOAT16_to_FLOAT': FLOAT16,
    'test_castlike_FLOAT16_to_FLOAT4E2M1': FLOAT16,
    'test_castlike_FLOAT16_to_FLOAT4E2M1_expanded':
        'element type FLOAT4E2M1 is not supported (tensor type tilerun does not carry)',
    'test_castlike_FLOAT16_to_FLOAT8E4M3FN': FLOAT16,
    'test_castlike_FLOAT16_to_FLOAT8E4M3FNUZ': FLOAT16,
    'test_castlike_FLOAT16_to_FLOAT8E4M3FNUZ_expanded':
        'element type FLOAT8E4M3FNUZ is not supported (tensor type tilerun does not carry)',
    'test_castlike_FLOAT16_to_FLOAT8E4M3FN_expanded':
        'element type FLOAT8E4M3FN is not supported (tensor type tilerun does not carry)',
    'test_castlike_FLOAT16_to_FLOAT8E5M2': FLOAT16,
    'test_castlike_FLOAT16_to_FLOAT8E5M2FNUZ': FLOAT16,
    'test_castlike_FLOAT16_to_FLOAT8E5M2FNUZ_expanded':
        'element type FLOAT8E5M2FNUZ is not supported (tensor type tilerun does not carry)',
    'test_castlike_FLOAT16_to_FLOAT8E5M2_expanded':
        'element type FLOAT8E5M2 is not supported (tensor type tilerun does not carry)',
    'test_castlike_FLOAT16_to_FLOAT_expanded': FLOAT16,
    'test_castlike_FLOAT16_to_INT2': FLOAT16,
    'test_castlike_FLOAT16_to_INT2_expanded':
        'element type INT2 is not supported (tensor type tilerun does not carry)',
    'test_castlike_FLOAT16_to_INT4': FLOAT16,
    'test_castlike_FLOAT16_to_INT4_expanded':
        'element type INT4 is not supported (tensor type tilerun does not carry)',
    'test_castlike_FLOAT16_to_UINT2': FLOAT16,
    'test_castlike_FLOAT16_to_UINT2_expanded':
        'element type UINT2 is not supported (tensor type tilerun does not carry)',
    'test_castlike_FLOAT16_to_UINT4': FLOAT16,
    'test_castlike_FLOAT16_to_UINT4_expanded':
        'element type UINT4 is not supported (tensor type tilerun does not carry)',
    'test_castlike_FLOAT4E2M1_to_FLOAT': 'element type FLOAT4E2M1 is not supported (tensor type tilerun does not carry)',
    'test_castlike_FLOAT4E2M1_to_FLOAT16': 'element type FLOAT4E2M1 is not supported (tensor type tilerun does not carry)',
    'test_castlike_FLOAT4E2M1_to_FLOAT16_expanded':
        'element type FLOAT4E2M1 is not supported (tensor type tilerun does not carry)',
    'test_castlike_FLOAT4E2M1_to_FLOAT_expanded':
        'element type FLOAT4E2M1 is not supported (tensor type tilerun does not carry)',
    'test_castlike_FLOAT8E4M3FNUZ_to_FLOAT': 'element type FLOAT8E4M3FNUZ is not supported (tensor type tilerun does not carry)',
    'test_castlike_FLOAT8E4M3FNUZ_to_FLOAT16': 'element type FLOAT8E4M3FNUZ is not supported (tensor type tilerun does not carry)',
    'test_castlike_FLOAT8E4M3FNUZ_to_FLOAT16_expanded':
        'element type FLOAT8E4M3FNUZ is not supported (tensor type tilerun does not carry)',
    'test_castlike_FLOAT8E4M3FNUZ_to_FLOAT_expanded':
        'element type FLOAT8E4M3FNUZ is not supported (tensor type tilerun does not carry)',
    'test_castlike_FLOAT8E4M3FN_to_FLOAT': 'element type FLOAT8E4M3FN is not supported (tensor type tilerun does not carry)',
    'test_castlike_FLOAT8E4M3FN_to_FLOAT16': 'element type FLOAT8E4M3FN is not supported (tensor type tilerun does not carry)',
    'test_castlike_FLOAT8E4M3FN_to_FLOAT16_expanded':
        'element type FLOAT8E4M3FN is not supported (tensor type tilerun does not carry)',
    'test_castlike_FLOAT8E4M3FN_to_FLOAT_expanded':
        'element type FLOAT8E4M3FN is not supported (tensor type tilerun does not carry)',
    'test_castlike_FLOAT8E5M2FNUZ_to_FLOAT': 'element type FLOAT8E5M2FNUZ is not supported (tensor type tilerun does not carry)',
    'test_castlike_FLOAT8E5M2FNUZ_to_FLOAT16': 'element type FLOAT8E5M2FNUZ is not supported (tensor type tilerun does not carry)',
    'test_castlike_FLOAT8E5M2FNUZ_to_FLOAT16_expanded':
        'element type FLOAT8E5M2FNUZ is not supported (tensor type tilerun does not carry)',
    'test_castlike_FLOAT8E5M2FNUZ_to_FLOAT_expanded':
        'element type FLOAT8E5M2FNUZ is not supported (tensor type tilerun does not carry)',
    'test_castlike_FLOAT8E5M2_to_FLOAT': 'element type FLOAT8E5M2 is not supported (tensor type tilerun does not carry)',
    'test_castlike_FLOAT8E5M2_to_FLOAT16': 'element type FLOAT8E5M2 is not supported (tensor type tilerun does not carry)',
    'test_castlike_FLOAT8E5M2_to_FLOAT16_expanded':
        'element type FLOAT8E5M2 is not supported (tensor type tilerun does not carry)',
    'test_castlike_FLOAT8E5M2_to_FLOAT_expanded':
        'element type FLOAT8E5M2 is not supported (tensor type tilerun does not carry)',
    'test_castlike_FLOAT_to_BFLOAT16': 'element type BFLOAT16 is not supported (tensor type tilerun does not carry)',
    'test_castlike_FLOAT_to_BFLOAT16_expanded':
        'element type BFLOAT16 is not supported (tensor type tilerun does not carry)',
    'test_castlike_FLOAT_to_DOUBLE': FLOAT64,
    'test_castlike_FLOAT_to_DOUBLE_expanded': FLOAT64,
    'test_castlike_FLOAT_to_FLOAT16': FLOAT16,
    'test_castlike_FLOAT_to_FLOAT16_expanded': FLOAT16,
    'test_castlike_FLOAT_to_FLOAT4E2M1': 'element type FLOAT4E2M1 is not supported (tensor type tilerun does not carry)',
    'test_castlike_FLOAT_to_FLOAT4E2M1_expanded':
        'element type FLOAT4E2M1 is not supported (tensor type tilerun does not carry)',
    'test_castlike_FLOAT_to_FLOAT8E4M3FN': 'element type FLOAT8E4M3FN is not supported (tensor type tilerun does not carry)',
    'test_castlike_FLOAT_to_FLOAT8E4M3FNUZ': 'element type FLOAT8E4M3FNUZ is not supported (tensor type tilerun does not carry)',
    'test_castlike_FLOAT_to_FLOAT8E4M3FNUZ_expanded':
        'element type FLOAT8E4M3FNUZ is not supported (tensor type tilerun does not carry)',
    'test_castlike_FLOAT_to_FLOAT8E4M3FN_expanded':
        'element type FLOAT8E4M3FN is not supported (tensor type tilerun does not carry)',
    'test_castlike_FLOAT_to_FLOAT8E5M2': 'element type FLOAT8E5M2 is not supported (tensor type tilerun does not carry)',
    'test_castlike_FLOAT_to_FLOAT8E5M2FNUZ': 'element type FLOAT8E5M2FNUZ is not supported (tensor type tilerun does not carry)',
    'test_castlike_FLOAT_to_FLOAT8E5M2FNUZ_expanded':
        'element type FLOAT8E5M2FNUZ is not supported (tensor type tilerun does not carry)',
    'test_castlike_FLOAT_to_FLOAT8E5M2_expanded':
        'element type FLOAT8E5M2 is not supported (tensor type tilerun does not carry)',
    'test_castlike_FLOAT_to_INT2': 'element type INT2 is not supported (tensor type tilerun does not carry)',
    'test_castlike_FLOAT_to_INT2_expanded':
        'element type INT2 is not supported (tensor type tilerun does not carry)',
    'test_castlike_FLOAT_to_INT4': 'element type INT4 is not supported (tensor type tilerun does not carry)',
    'test_castlike_FLOAT_to_INT4_expanded':
        'element type INT4 is not supported (tensor type tilerun does not carry)',
    'test_castlike_FLOAT_to_UINT2': 'element type UINT2 is not supported (tensor type tilerun does not carry)',
    'test_castlike_FLOAT_to_UINT2_expanded':
        'element type UINT2 is not supported (tensor type tilerun does not carry)',
    'test_castlike_FLOAT_to_UINT4': 'element type UINT4 is not supported (tensor type tilerun does not carry)',
    'test_castlike_FLOAT_to_UINT4_expanded':
        'element type UINT4 is not supported (tensor type tilerun does not carry)',
    'test_castlike_INT2_to_FLOAT': 'element type INT2 is not supported (tensor type tilerun does not carry)',
    'test_castlike_INT2_to_FLOAT16': 'element type INT2 is not supported (tensor type tilerun does not carry)',
    'test_castlike_INT2_to_FLOAT16_expanded':
        'element type INT2 is not supported (tensor type tilerun does not carry)',
    'test_castlike_INT2_to_FLOAT_expanded':
        'element type INT2 is not supported (tensor type tilerun does not carry)',
    'test_castlike_INT2_to_INT8': 'element type INT2 is not supported (tensor type tilerun does not carry)',
    'test_castlike_INT2_to_INT8_expanded':
        'element type INT2 is not supported (tensor type tilerun does not carry)',
    'test_castlike_INT4_to_FLOAT': 'element type INT4 is not supported (tensor type tilerun does not carry)',
    'test_castlike_INT4_to_FLOAT16': 'element type INT4 is not supported (tensor type tilerun does not carry)',
    'test_castlike_INT4_to_FLOAT16_expanded':
        'element type INT4 is not supported (tensor type tilerun does not carry)',
    'test_castlike_INT4_to_FLOAT_expanded':
        'element type INT4 is not supported (tensor type tilerun does not carry)',
    'test_castlike_INT4_to_INT8': 'element type INT4 is not supported (tensor type tilerun does not carry)',
    'test_castlike_INT4_to_INT8_expanded':
        'element type INT4 is not supported (tensor type tilerun does not carry)',
    'test_castlike_UINT2_to_FLOAT': 'element type UINT2 is not supported (tensor type tilerun does not carry)',
    'test_castlike_UINT2_to_FLOAT16': 'element type UINT2 is not supported (tensor type tilerun does not carry)',
    'test_castlike_UINT2_to_FLOAT16_expanded':
        'element type UINT2 is not supported (tensor type tilerun does not carry)',
    'test_castlike_UINT2_to_FLOAT_expanded':
        'element type UINT2 is not supported (tensor type tilerun does not carry)',
    'test_castlike_UINT2_to_UINT8': 'element type UINT2 is not supported (tensor type tilerun does not carry)',
    'test_castlike_UINT2_to_UINT8_expanded':
        'element type UINT2 is not supported (tensor type tilerun does not carry)',
    'test_castlike_UINT4_to_FLOAT': 'element type UINT4 is not supported (tensor type tilerun does not carry)',
    'test_castlike_UINT4_to_FLOAT16': 'element type UINT4 is not supported (tensor type tilerun does not carry)',
    'test_castlike_UINT4_to_FLOAT16_expanded':
        'element type UINT4 is not supported (tensor type tilerun does not carry)',
    'test_castlike_UINT4_to_FLOAT_expanded':
        'element type UINT4 is not supported (tensor type tilerun does not carry)',
    'test_castlike_UINT4_to_UINT8': 'element type UINT4 is not supported (tensor type tilerun does not carry)',
    'test_castlike_UINT4_to_UINT8_expanded':
        'element type UINT4 is not supported (tensor type tilerun does not carry)',
    'test_castlike_no_saturate_FLOAT16_to_FLOAT8E4M3FN': FLOAT16,
    'test_castlike_no_saturate_FLOAT16_to_FLOAT8E4M3FNUZ': FLOAT16,
    'test_castlike_no_saturate_FLOAT16_to_FLOAT8E4M3FNUZ_expanded':
        'element type FLOAT8E4M3FNUZ is not supported (tensor type tilerun does not carry)',
    'test_castlike_no_saturate_FLOAT16_to_FLOAT8E4M3FN_expanded':
        'element type FLOAT8E4M3FN is not supported (tensor type tilerun does not carry)',
    'test_castlike_no_saturate_FLOAT16_to_FLOAT8E5M2': FLOAT16,
    'test_castlike_no_saturate_FLOAT16_to_FLOAT8E5M2FNUZ': FLOAT16,
    'test_castlike_no_saturate_FLOAT16_to_FLOAT8E5M2FNUZ_expanded':
        'element type FLOAT8E5M2FNUZ is not supported (tensor type tilerun does not carry)',
    'test_castlike_no_saturate_FLOAT16_to_FLOAT8E5M2_expanded':
        'element type FLOAT8E5M2 is not supported (tensor type tilerun does not carry)',
    'test_castlike_no_saturate_FLOAT_to_FLOAT8E4M3FN': 'element type FLOAT8E4M3FN is not supported (tensor type tilerun does not carry)',
    'test_castlike_no_saturate_FLOAT_to_FLOAT8E4M3FNUZ': 'element type FLOAT8E4M3FNUZ is not supported (tensor type tilerun does not carry)',
    'test_castlike_no_saturate_FLOAT_to_FLOAT8E4M3FNUZ_expanded':
        'element type FLOAT8E4M3FNUZ is not supported (tensor type tilerun does not carry)',
    'test_castlike_no_saturate_FLOAT_to_FLOAT8E4M3FN_expanded':
        'element type FLOAT8E4M3FN is not supported (tensor type tilerun does not carry)',
    'test_castlike_no_saturate_FLOAT_to_FLOAT8E5M2': 'element type FLOAT8E5M2 is not supported (tensor type tilerun does not carry)',
    'test_castlike_no_saturate_FLOAT_to_FLOAT8E5M2FNUZ': 'element type FLOAT8E5M2FNUZ is not supported (tensor type tilerun does not carry)',
    'test_castlike_no_saturate_FLOAT_to_FLOAT8E5M2FNUZ_expanded':
        'element type FLOAT8E5M2FNUZ is not supported (tensor type tilerun does not carry)',
    'test_castlike_no_saturate_FLOAT_to_FLOAT8E5M2_expanded':
        'element type FLOAT8E5M2 is not supported (tensor type tilerun does not carry)',
    'test_causal_conv_with_state_fp16_expanded': FLOAT16,
    'test_causal_conv_with_state_silu_fp16_expanded': FLOAT16,
    'test_celu_bfloat16_expanded': 'element type BFLOAT16 is not supported (tensor type tilerun does not carry)',
    'test_celu_float16_expanded': FLOAT16,
    'test_cumsum_1d': FLOAT64,
    'test_cumsum_1d_exclusive': FLOAT64,
    'test_cumsum_1d_reverse': FLOAT64,
    'test_cumsum_1d_reverse_exclusive': FLOAT64,
    'test_cumsum_2d_axis_0': FLOAT64,
    'test_cumsum_2d_axis_1': FLOAT64,
    'test_cumsum_2d_negative_axis': FLOAT64,
    'test_einsum_batch_diagonal': FLOAT64,
    'test_einsum_batch_matmul': FLOAT64,
    'test_einsum_batch_matmul_bfloat16': 'element type BFLOAT16 is not supported (tensor type tilerun does not carry)',
    'test_einsum_inner_prod': FLOAT64,
    'test_einsum_scalar': FLOAT64,
    'test_einsum_sum': FLOAT64,
    'test_einsum_sum_bfloat16': 'element type BFLOAT16 is not supported (tensor type tilerun does not carry)',
    'test_einsum_transpose': FLOAT64,
    'test_einsum_transpose_bfloat16': 'element type BFLOAT16 is not supported (tensor type tilerun does not carry)',
    'test_equal_string':
        'element type STRING is not supported (tensor type tilerun does not carry)',
    'test_equal_string_broadcast':
        'element type STRING is not supported (tensor type tilerun does not carry)',
    'test_flexattention_double_expanded_ver26': FLOAT64,
    'test_flexattention_fp16_expanded_ver26': FLOAT16,
    'test_identity_opt': NOT_TENSOR,
    'test_identity_sequence': NOT_TENSOR,
    'test_isinf_float16': FLOAT16,
    'test_isnan_float16': FLOAT16,
    'test_max_float16': FLOAT16,
    'test_max_float64': FLOAT64,
    'test_maxpool_2d_uint8':
        'MaxPool on uint8 is not supported (float32 only)',
    'test_maxpool_with_argmax_2d_precomputed_pads':
        "MaxPool's Indices output is not supported",
    'test_maxpool_with_argmax_2d_precomputed_strides':
        "MaxPool's Indices output is not supported",
    'test_min_float16': FLOAT16,
    'test_min_float64': FLOAT64,
    'test_mod_float16_mixed_sign_fmod_0': FLOAT16,
    'test_mod_float64_mixed_sign_fmod_0': FLOAT64,
    'test_mod_float_edge_cases_fmod_0_float16': FLOAT16,
    'test_mod_float_edge_cases_fmod_0_float64': FLOAT64,
    'test_mod_mixed_sign_float16': FLOAT16,
    'test_mod_mixed_sign_float64': FLOAT64,
    'test_pow_types_float32_int32':
        'Pow with an integer base or exponent is not supported (float32 only)',
    'test_pow_types_float32_int64':
        'Pow with an integer base or exponent is not supported (float32 only)',
    'test_pow_types_float32_uint32':
        'Pow with an integer base or exponent is not supported (float32 only)',
    'test_pow_types_float32_uint64':
        'Pow with an integer base or exponent is not supported (float32 only)',
    'test_pow_types_int32_float32':
        'Pow with an integer base or exponent is not supported (float32 only)',
    'test_pow_types_int32_int32':
        'Pow with an integer base or exponent is not supported (float32 only)',
    'test_pow_types_int64_float32':
        'Pow with an integer base or exponent is not supported (float32 only)',
    'test_pow_types_int64_int64':
        'Pow with an integer base or exponent is not supported (float32 only)',
    'test_range_bfloat16_type_positive_delta': 'element type BFLOAT16 is not supported (tensor type tilerun does not carry)',
    'test_range_float16_type_positive_delta': FLOAT16,
    'test_reduce_log_sum_exp_default_axes_keepdims_example': FLOAT64,
    'test_reduce_log_sum_exp_default_axes_keepdims_example_expanded': FLOAT64,
    'test_reduce_log_sum_exp_default_axes_keepdims_random': FLOAT64,
    'test_reduce_log_sum_exp_default_axes_keepdims_random_expanded': FLOAT64,
    'test_reduce_log_sum_exp_do_not_keepdims_example': FLOAT64,
    'test_reduce_log_sum_exp_do_not_keepdims_example_expanded': FLOAT64,
    'test_reduce_log_sum_exp_do_not_keepdims_random': FLOAT64,
    'test_reduce_log_sum_exp_do_not_keepdims_random_expanded': FLOAT64,
    'test_reduce_log_sum_exp_empty_set_expanded': FLOAT64,
    'test_reduce_log_sum_exp_keepdims_example': FLOAT64,
    'test_reduce_log_sum_exp_keepdims_example_expanded': FLOAT64,
    'test_reduce_log_sum_exp_keepdims_random': FLOAT64,
    'test_reduce_log_sum_exp_keepdims_random_expanded': FLOAT64,
    'test_reduce_log_sum_exp_negative_axes_keepdims_example': FLOAT64,
    'test_reduce_log_sum_exp_negative_axes_keepdims_example_expanded': FLOAT64,
    'test_reduce_log_sum_exp_negative_axes_keepdims_random': FLOAT64,
    'test_reduce_log_sum_exp_negative_axes_keepdims_random_expanded': FLOAT64,
    'test_reduce_max_bool_inputs':
        'ReduceMax on bool is not supported (float32 only; bool reductions not implemented)',
    'test_reduce_max_empty_set_bool':
        'ReduceMax on bool is not supported (float32 only; bool reductions not implemented)',
    'test_reduce_min_bool_inputs':
        'ReduceMin on bool is not supported (float32 only; bool reductions not implemented)',
    'test_top_k_uint64':
        'TopK on uint64 is not supported (float32, int32 and int64 only)',
    'test_training_dropout': DROPOUT,
    'test_training_dropout_default': DROPOUT,
    'test_training_dropout_default_mask': DROPOUT,
    'test_training_dropout_mask': DROPOUT,
}
