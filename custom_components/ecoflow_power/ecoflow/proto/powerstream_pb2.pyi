from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class InverterHeartbeat(_message.Message):
    __slots__ = ("pv1_input_watts", "pv2_input_watts", "bat_input_watts", "bat_soc", "inv_op_volt", "inv_output_watts", "inv_freq", "chg_remain_time", "dsg_remain_time")
    PV1_INPUT_WATTS_FIELD_NUMBER: _ClassVar[int]
    PV2_INPUT_WATTS_FIELD_NUMBER: _ClassVar[int]
    BAT_INPUT_WATTS_FIELD_NUMBER: _ClassVar[int]
    BAT_SOC_FIELD_NUMBER: _ClassVar[int]
    INV_OP_VOLT_FIELD_NUMBER: _ClassVar[int]
    INV_OUTPUT_WATTS_FIELD_NUMBER: _ClassVar[int]
    INV_FREQ_FIELD_NUMBER: _ClassVar[int]
    CHG_REMAIN_TIME_FIELD_NUMBER: _ClassVar[int]
    DSG_REMAIN_TIME_FIELD_NUMBER: _ClassVar[int]
    pv1_input_watts: int
    pv2_input_watts: int
    bat_input_watts: int
    bat_soc: int
    inv_op_volt: int
    inv_output_watts: int
    inv_freq: int
    chg_remain_time: int
    dsg_remain_time: int
    def __init__(self, pv1_input_watts: _Optional[int] = ..., pv2_input_watts: _Optional[int] = ..., bat_input_watts: _Optional[int] = ..., bat_soc: _Optional[int] = ..., inv_op_volt: _Optional[int] = ..., inv_output_watts: _Optional[int] = ..., inv_freq: _Optional[int] = ..., chg_remain_time: _Optional[int] = ..., dsg_remain_time: _Optional[int] = ...) -> None: ...
