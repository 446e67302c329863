from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DisplayPropertyUpload(_message.Message):
    __slots__ = ("pow_in_sum_w", "pow_out_sum_w", "energy_backup_en", "energy_backup_start_soc", "screen_off_time", "ac_standby_time", "ac_always_on_mini_soc", "xboost_en", "flow_info_ac_in", "pow_get_ac", "pow_get_ac_in", "plug_in_info_ac_in_flag", "plug_in_info_ac_in_feq", "pow_get_bms", "plug_in_info_ac_charger_flag", "plug_in_info_ac_in_chg_pow_max", "bms_batt_soc", "bms_dsg_rem_time", "bms_chg_rem_time", "cms_batt_soc", "cms_dsg_rem_time", "cms_chg_rem_time", "bms_chg_dsg_state", "cms_chg_dsg_state", "pow_get_pv", "pow_get_ac_out")
    POW_IN_SUM_W_FIELD_NUMBER: _ClassVar[int]
    POW_OUT_SUM_W_FIELD_NUMBER: _ClassVar[int]
    ENERGY_BACKUP_EN_FIELD_NUMBER: _ClassVar[int]
    ENERGY_BACKUP_START_SOC_FIELD_NUMBER: _ClassVar[int]
    SCREEN_OFF_TIME_FIELD_NUMBER: _ClassVar[int]
    AC_STANDBY_TIME_FIELD_NUMBER: _ClassVar[int]
    AC_ALWAYS_ON_MINI_SOC_FIELD_NUMBER: _ClassVar[int]
    XBOOST_EN_FIELD_NUMBER: _ClassVar[int]
    FLOW_INFO_AC_IN_FIELD_NUMBER: _ClassVar[int]
    POW_GET_AC_FIELD_NUMBER: _ClassVar[int]
    POW_GET_AC_IN_FIELD_NUMBER: _ClassVar[int]
    PLUG_IN_INFO_AC_IN_FLAG_FIELD_NUMBER: _ClassVar[int]
    PLUG_IN_INFO_AC_IN_FEQ_FIELD_NUMBER: _ClassVar[int]
    POW_GET_BMS_FIELD_NUMBER: _ClassVar[int]
    PLUG_IN_INFO_AC_CHARGER_FLAG_FIELD_NUMBER: _ClassVar[int]
    PLUG_IN_INFO_AC_IN_CHG_POW_MAX_FIELD_NUMBER: _ClassVar[int]
    BMS_BATT_SOC_FIELD_NUMBER: _ClassVar[int]
    BMS_DSG_REM_TIME_FIELD_NUMBER: _ClassVar[int]
    BMS_CHG_REM_TIME_FIELD_NUMBER: _ClassVar[int]
    CMS_BATT_SOC_FIELD_NUMBER: _ClassVar[int]
    CMS_DSG_REM_TIME_FIELD_NUMBER: _ClassVar[int]
    CMS_CHG_REM_TIME_FIELD_NUMBER: _ClassVar[int]
    BMS_CHG_DSG_STATE_FIELD_NUMBER: _ClassVar[int]
    CMS_CHG_DSG_STATE_FIELD_NUMBER: _ClassVar[int]
    POW_GET_PV_FIELD_NUMBER: _ClassVar[int]
    POW_GET_AC_OUT_FIELD_NUMBER: _ClassVar[int]
    pow_in_sum_w: float
    pow_out_sum_w: float
    energy_backup_en: int
    energy_backup_start_soc: int
    screen_off_time: int
    ac_standby_time: int
    ac_always_on_mini_soc: int
    xboost_en: int
    flow_info_ac_in: int
    pow_get_ac: float
    pow_get_ac_in: float
    plug_in_info_ac_in_flag: int
    plug_in_info_ac_in_feq: int
    pow_get_bms: float
    plug_in_info_ac_charger_flag: int
    plug_in_info_ac_in_chg_pow_max: int
    bms_batt_soc: float
    bms_dsg_rem_time: int
    bms_chg_rem_time: int
    cms_batt_soc: float
    cms_dsg_rem_time: int
    cms_chg_rem_time: int
    bms_chg_dsg_state: int
    cms_chg_dsg_state: int
    pow_get_pv: float
    pow_get_ac_out: float
    def __init__(self, pow_in_sum_w: _Optional[float] = ..., pow_out_sum_w: _Optional[float] = ..., energy_backup_en: _Optional[int] = ..., energy_backup_start_soc: _Optional[int] = ..., screen_off_time: _Optional[int] = ..., ac_standby_time: _Optional[int] = ..., ac_always_on_mini_soc: _Optional[int] = ..., xboost_en: _Optional[int] = ..., flow_info_ac_in: _Optional[int] = ..., pow_get_ac: _Optional[float] = ..., pow_get_ac_in: _Optional[float] = ..., plug_in_info_ac_in_flag: _Optional[int] = ..., plug_in_info_ac_in_feq: _Optional[int] = ..., pow_get_bms: _Optional[float] = ..., plug_in_info_ac_charger_flag: _Optional[int] = ..., plug_in_info_ac_in_chg_pow_max: _Optional[int] = ..., bms_batt_soc: _Optional[float] = ..., bms_dsg_rem_time: _Optional[int] = ..., bms_chg_rem_time: _Optional[int] = ..., cms_batt_soc: _Optional[float] = ..., cms_dsg_rem_time: _Optional[int] = ..., cms_chg_rem_time: _Optional[int] = ..., bms_chg_dsg_state: _Optional[int] = ..., cms_chg_dsg_state: _Optional[int] = ..., pow_get_pv: _Optional[float] = ..., pow_get_ac_out: _Optional[float] = ...) -> None: ...

class RuntimePropertyUpload(_message.Message):
    __slots__ = ("plug_in_info_ac_out_vol", "plug_in_info_ac_in_vol", "pd_firm_ver", "plug_in_info_ac_in_amp", "bms_batt_vol", "bms_batt_amp")
    PLUG_IN_INFO_AC_OUT_VOL_FIELD_NUMBER: _ClassVar[int]
    PLUG_IN_INFO_AC_IN_VOL_FIELD_NUMBER: _ClassVar[int]
    PD_FIRM_VER_FIELD_NUMBER: _ClassVar[int]
    PLUG_IN_INFO_AC_IN_AMP_FIELD_NUMBER: _ClassVar[int]
    BMS_BATT_VOL_FIELD_NUMBER: _ClassVar[int]
    BMS_BATT_AMP_FIELD_NUMBER: _ClassVar[int]
    plug_in_info_ac_out_vol: float
    plug_in_info_ac_in_vol: float
    pd_firm_ver: int
    plug_in_info_ac_in_amp: float
    bms_batt_vol: float
    bms_batt_amp: float
    def __init__(self, plug_in_info_ac_out_vol: _Optional[float] = ..., plug_in_info_ac_in_vol: _Optional[float] = ..., pd_firm_ver: _Optional[int] = ..., plug_in_info_ac_in_amp: _Optional[float] = ..., bms_batt_vol: _Optional[float] = ..., bms_batt_amp: _Optional[float] = ...) -> None: ...

class CmsHeartbeatV1p0(_message.Message):
    __slots__ = ("chg_state", "lcd_show_soc", "chg_remain_time", "dsg_remain_time", "f32_lcd_show_soc", "bms_is_connt", "min_dsg_soc")
    CHG_STATE_FIELD_NUMBER: _ClassVar[int]
    LCD_SHOW_SOC_FIELD_NUMBER: _ClassVar[int]
    CHG_REMAIN_TIME_FIELD_NUMBER: _ClassVar[int]
    DSG_REMAIN_TIME_FIELD_NUMBER: _ClassVar[int]
    F32_LCD_SHOW_SOC_FIELD_NUMBER: _ClassVar[int]
    BMS_IS_CONNT_FIELD_NUMBER: _ClassVar[int]
    MIN_DSG_SOC_FIELD_NUMBER: _ClassVar[int]
    chg_state: int
    lcd_show_soc: int
    chg_remain_time: int
    dsg_remain_time: int
    f32_lcd_show_soc: float
    bms_is_connt: _containers.RepeatedScalarFieldContainer[int]
    min_dsg_soc: int
    def __init__(self, chg_state: _Optional[int] = ..., lcd_show_soc: _Optional[int] = ..., chg_remain_time: _Optional[int] = ..., dsg_remain_time: _Optional[int] = ..., f32_lcd_show_soc: _Optional[float] = ..., bms_is_connt: _Optional[_Iterable[int]] = ..., min_dsg_soc: _Optional[int] = ...) -> None: ...

class CmsHeartbeatV1p3(_message.Message):
    __slots__ = ("chg_line_plug_in_flag", "sys_chg_dsg_state")
    CHG_LINE_PLUG_IN_FLAG_FIELD_NUMBER: _ClassVar[int]
    SYS_CHG_DSG_STATE_FIELD_NUMBER: _ClassVar[int]
    chg_line_plug_in_flag: int
    sys_chg_dsg_state: int
    def __init__(self, chg_line_plug_in_flag: _Optional[int] = ..., sys_chg_dsg_state: _Optional[int] = ...) -> None: ...

class CmsHeartbeatReport(_message.Message):
    __slots__ = ("v1p0", "v1p3")
    V1P0_FIELD_NUMBER: _ClassVar[int]
    V1P3_FIELD_NUMBER: _ClassVar[int]
    v1p0: CmsHeartbeatV1p0
    v1p3: CmsHeartbeatV1p3
    def __init__(self, v1p0: _Optional[_Union[CmsHeartbeatV1p0, _Mapping]] = ..., v1p3: _Optional[_Union[CmsHeartbeatV1p3, _Mapping]] = ...) -> None: ...

class BmsHeartbeatReport(_message.Message):
    __slots__ = ("num", "soc", "vol", "amp", "f32_show_soc", "input_watts", "output_watts", "remain_time", "bms_sn", "accu_chg_energy", "accu_dsg_energy")
    NUM_FIELD_NUMBER: _ClassVar[int]
    SOC_FIELD_NUMBER: _ClassVar[int]
    VOL_FIELD_NUMBER: _ClassVar[int]
    AMP_FIELD_NUMBER: _ClassVar[int]
    F32_SHOW_SOC_FIELD_NUMBER: _ClassVar[int]
    INPUT_WATTS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_WATTS_FIELD_NUMBER: _ClassVar[int]
    REMAIN_TIME_FIELD_NUMBER: _ClassVar[int]
    BMS_SN_FIELD_NUMBER: _ClassVar[int]
    ACCU_CHG_ENERGY_FIELD_NUMBER: _ClassVar[int]
    ACCU_DSG_ENERGY_FIELD_NUMBER: _ClassVar[int]
    num: int
    soc: int
    vol: int
    amp: int
    f32_show_soc: float
    input_watts: int
    output_watts: int
    remain_time: int
    bms_sn: str
    accu_chg_energy: int
    accu_dsg_energy: int
    def __init__(self, num: _Optional[int] = ..., soc: _Optional[int] = ..., vol: _Optional[int] = ..., amp: _Optional[int] = ..., f32_show_soc: _Optional[float] = ..., input_watts: _Optional[int] = ..., output_watts: _Optional[int] = ..., remain_time: _Optional[int] = ..., bms_sn: _Optional[str] = ..., accu_chg_energy: _Optional[int] = ..., accu_dsg_energy: _Optional[int] = ...) -> None: ...
