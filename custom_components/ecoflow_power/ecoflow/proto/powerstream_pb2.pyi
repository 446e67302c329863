from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class InverterHeartbeat(_message.Message):
    __slots__ = ("pv1_input_watts", "pv2_input_watts", "bat_input_watts", "bat_soc", "inv_output_watts")
    PV1_INPUT_WATTS_FIELD_NUMBER: _ClassVar[int]
    PV2_INPUT_WATTS_FIELD_NUMBER: _ClassVar[int]
    BAT_INPUT_WATTS_FIELD_NUMBER: _ClassVar[int]
    BAT_SOC_FIELD_NUMBER: _ClassVar[int]
    INV_OUTPUT_WATTS_FIELD_NUMBER: _ClassVar[int]
    pv1_input_watts: int
    pv2_input_watts: int
    bat_input_watts: int
    bat_soc: int
    inv_output_watts: int
    def __init__(self, pv1_input_watts: _Optional[int] = ..., pv2_input_watts: _Optional[int] = ..., bat_input_watts: _Optional[int] = ..., bat_soc: _Optional[int] = ..., inv_output_watts: _Optional[int] = ...) -> None: ...
