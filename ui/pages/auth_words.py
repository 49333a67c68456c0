"""Words shared by the teller and supervisor pages: scenarios, reasons, scores.

The scenarios are the edge's: its authorization service publishes the ones it
enforces (``AuthScenarios``, retained on ``auth/scenarios``) and the pages show
exactly those; until the message comes they say they are waiting for it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from edge.core.auth_policy import reason_text
from mqtt.messages import AuthScenarios, Message, Scenario, Score
from ui.state.i18n import register_texts

register_texts({
    "auth.scenario": {"zh-CN": "业务类型", "en": "Transaction"},
    "auth.scenarios.waiting": {"zh-CN": "正在等待网点服务器发布业务类型…",
                               "en": "Waiting for the edge's list of transactions…"},
    "auth.need_scenario": {"zh-CN": "业务类型尚未就绪，请稍候",
                           "en": "No transactions yet: wait for the edge"},
    "auth.scenario.supervisor": {"zh-CN": "该业务须主管授权",
                                 "en": "This transaction always needs a supervisor"},
    "auth.scenario.limit": {"zh-CN": "金额超过 {amount} 元须主管授权",
                            "en": "A supervisor decides above {amount} CNY"},
    "auth.scenario.automatic": {"zh-CN": "核验通过即可自动授权",
                                "en": "Approved automatically when the checks pass"},
    "auth.customer": {"zh-CN": "客户号", "en": "Customer id"},
    "auth.amount": {"zh-CN": "金额（元，可选）", "en": "Amount (CNY, optional)"},
    "auth.consent": {"zh-CN": "客户另行同意人脸识别核验（生物特征）",
                     "en": "Customer separately agrees to face (biometric) verification"},
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


class ScenarioCatalogue:
    """The counter scenarios the edge enforces, as it last published them; empty until
    its message arrives (pure bookkeeping, no widgets)."""

    def __init__(self, branch_id: str) -> None:
        self.branch_id = branch_id
        self.latest: AuthScenarios | None = None

    def update(self, message: Message) -> bool:
        """Take ``message`` when it is this branch's scenario list and not the one held."""
        if not isinstance(message, AuthScenarios) or message.branch_id != self.branch_id:
            return False
        if self.latest is not None and message.id == self.latest.id:
            return False
        self.latest = message
        return True

    @property
    def scenarios(self) -> list[Scenario]:
        return self.latest.scenarios if self.latest is not None else []

    def get(self, name: str) -> Scenario | None:
        return next((s for s in self.scenarios if s.name == name), None)

    def title(self, name: str, language: str) -> str:
        """The scenario's title; its name while the edge has not said (or no longer has it)."""
        found = self.get(name)
        return name if found is None else scenario_title(found, language)


def scenario_title(scenario: Scenario, language: str) -> str:
    return scenario.title if language.startswith("zh") else scenario.title_en


def scenario_hint(scenario: Scenario | None, texts: Callable[..., str]) -> str:
    """What the teller should know before sending: waiting for the edge, a supervisor
    always decides, or above which amount one does."""
    if scenario is None:
        return texts("auth.scenarios.waiting")
    if not scenario.auto_approve:
        return texts("auth.scenario.supervisor")
    if scenario.auto_approve_max_amount is not None:
        return texts("auth.scenario.limit", amount=f"{scenario.auto_approve_max_amount:,.0f}")
    return texts("auth.scenario.automatic")


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
