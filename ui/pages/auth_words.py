"""Words shared by the teller and supervisor pages: scenario titles, reasons, scores."""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import edge
from edge.core.auth_policy import PolicyError, ScenarioPolicy, policies_from_dict, reason_text
from mqtt.messages import Score
from ui.state.i18n import register_texts

POLICY_FILE = Path(edge.__file__).parent / "counter" / "policies.toml"

register_texts({
    "auth.scenario": {"zh-CN": "业务类型", "en": "Transaction"},
    "auth.customer": {"zh-CN": "客户号", "en": "Customer id"},
    "auth.amount": {"zh-CN": "金额（元，可选）", "en": "Amount (CNY, optional)"},
    "auth.consent": {"zh-CN": "客户同意人脸核验", "en": "Customer agrees to face verification"},
    "auth.reader": {"zh-CN": "读卡器：{status}", "en": "Card reader: {status}"},
    "auth.reader.none": {"zh-CN": "未配置", "en": "not configured"},
    "auth.reader.connecting": {"zh-CN": "正在连接", "en": "connecting"},
    "auth.reader.waiting": {"zh-CN": "请放置证件", "en": "place the card"},
    "auth.reader.reading": {"zh-CN": "正在读卡", "en": "reading"},
    "auth.reader.remove_card": {"zh-CN": "已读取，请取走证件", "en": "read; lift the card"},
    "auth.reader.error": {"zh-CN": "读卡失败：{error}", "en": "read failed: {error}"},
    "auth.reader.stopped": {"zh-CN": "已停止", "en": "stopped"},
    "auth.card.none": {"zh-CN": "尚未读取证件", "en": "No card read yet"},
    "auth.card.ok": {"zh-CN": "证件校验通过", "en": "Card checks passed"},
    "auth.card.photo": {"zh-CN": "证件照", "en": "Card photo"},
    "auth.live": {"zh-CN": "现场画面", "en": "Live"},
    "auth.live.none": {"zh-CN": "无摄像头画面", "en": "No camera picture"},
    "auth.counter_camera": {"zh-CN": "由柜台摄像头采集人脸（网点电脑）",
                             "en": "Take the live face from the counter camera (branch PC)"},
    "auth.capture": {"zh-CN": "采集人脸", "en": "Capture face"},
    "auth.captured": {"zh-CN": "已采集 {n} 帧", "en": "{n} frames captured"},
    "auth.verify": {"zh-CN": "提交核验", "en": "Verify"},
    "auth.need_card": {"zh-CN": "请先读取证件", "en": "Read the card first"},
    "auth.need_customer": {"zh-CN": "请输入客户号", "en": "Enter the customer id"},
    "auth.bad_amount": {"zh-CN": "金额格式不正确", "en": "The amount is not a number"},
    "auth.bad_frame": {"zh-CN": "采集的画面过大无法发送，请重新采集",
                       "en": "A captured frame is too large to send; capture again"},
    "auth.waiting": {"zh-CN": "正在核验…", "en": "Verifying…"},
    "auth.verdict.approve": {"zh-CN": "通过", "en": "Approved"},
    "auth.verdict.reject": {"zh-CN": "拒绝", "en": "Rejected"},
    "auth.verdict.escalate": {"zh-CN": "已提交主管授权，请稍候", "en": "Sent to a supervisor; please wait"},
    "auth.decided_by": {"zh-CN": "授权主管：{who}", "en": "Decided by supervisor {who}"},
    "auth.queue": {"zh-CN": "待授权", "en": "Waiting for authorization"},
    "auth.queue.empty": {"zh-CN": "暂无待授权业务", "en": "Nothing waiting"},
    "auth.none_selected": {"zh-CN": "请在左侧选择一笔业务", "en": "Choose a request from the list"},
    "auth.card_number": {"zh-CN": "证件号：{number}", "en": "ID number: {number}"},
    "auth.reason": {"zh-CN": "授权说明（必填）", "en": "Reason (required)"},
    "auth.approve": {"zh-CN": "同意", "en": "Approve"},
    "auth.reject": {"zh-CN": "拒绝", "en": "Reject"},
    "auth.need_reason": {"zh-CN": "请填写授权说明", "en": "Give a reason"},
    "auth.sent": {"zh-CN": "已发送：{decision}", "en": "Sent: {decision}"},
    "auth.expires": {"zh-CN": "{s} 秒后超时", "en": "times out in {s} s"},
    "score.liveness": {"zh-CN": "活体", "en": "Liveness"},
    "score.face_match": {"zh-CN": "人证比对", "en": "Face match"},
})


@cache
def scenarios(path: Path = POLICY_FILE) -> tuple[ScenarioPolicy, ...]:
    """The scenarios of the policy file (the one the edge ships), in file order."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        return tuple(policies_from_dict(data).scenarios.values())
    except (OSError, tomllib.TOMLDecodeError, PolicyError):
        return ()


def scenario_title(name: str, language: str) -> str:
    found = next((s for s in scenarios() if s.name == name), None)
    return found.title(language) if found else name


def reason_lines(reasons: Sequence[str], language: str) -> list[str]:
    """Reason codes in plain words; a supervisor's note is shown as written."""
    lines = []
    for code in reasons:
        if code.startswith("note:"):
            lines.append(code[len("note:"):])
        else:
            lines.append(reason_text(code, language))
    return lines


def score_lines(scores: Sequence[Score], texts_lookup: object) -> list[str]:
    words = texts_lookup if callable(texts_lookup) else str
    return [f"{words(f'score.{s.name}')}: {s.value:.3f} (≥ {s.threshold:.3f})" for s in scores]
