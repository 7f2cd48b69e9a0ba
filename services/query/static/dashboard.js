/* The programme manager's dashboard: reads the query API (/v1) with a bearer key and draws
 * the indicators, visits, model coverage, book rotation, reporting and intake rejections.
 * Every chart of a view comes from one request, GET /v1/dashboard, revalidated by its ETag.
 * Plain JavaScript; charts by Chart.js (window.Chart, served from /dashboard/vendor/).
 * Every label is in I18N below, Vietnamese first; times are shown in Asia/Ho_Chi_Minh. */
"use strict";

(() => {
  const TZ = "Asia/Ho_Chi_Minh";
  const KEY_STORAGE = "thuvien.apiKey";      // sessionStorage: the key lives as long as the tab
  const LANG_STORAGE = "thuvien.lang";       // localStorage: the reader's language
  const INDICATORS = ["K1", "K2", "K3", "K4"];
  const COLORS = {
    current: "#0f766e", previous: "#94a3b8", yoy: "#c2410c", target: "#b91c1c",
    completeness: "#0f766e", timeliness: "#2563eb",
    inTransit: "#f59e0b", onHand: "#0f766e", overdue: "#b91c1c",
    withModel: "#0f766e", withoutModel: "#cbd5e1", withModelFaded: "#99c8c3", withoutModelFaded: "#e8edf3",
  };

  // --- labels, both languages ----------------------------------------------------------------
  const I18N = {
    vi: {
      title: "Mô hình thư viện cơ sở — Bảng theo dõi",
      "scheme.label": "Địa giới hành chính",
      "scheme.legacy": "14 tỉnh (trước 1/7/2025)",
      "scheme.2025": "10 tỉnh (từ 1/7/2025)",
      "filter.province": "Tỉnh",
      "filter.year": "Năm",
      "area.legacy": "Cả 14 tỉnh của chương trình",
      "area.2025": "Cả 10 tỉnh hiện nay",
      "key.title": "Khóa truy cập",
      "key.prompt": "Nhập khóa API do quản trị viên cấp (bản chạy thử in khóa ra khi khởi động).",
      "key.label": "Khóa API",
      "key.submit": "Mở bảng theo dõi",
      "key.invalid": "Khóa không đúng hoặc đã bị thu hồi. Hãy nhập lại.",
      "key.name": "Khóa: {name}",
      "key.signOut": "Đổi khóa",
      "ind.title": "Chỉ số so với mục tiêu năm {year}",
      "ind.K1": "K1 · Xã có mô hình thư viện cơ sở",
      "ind.K2": "K2 · Thư viện phối hợp hiệu quả với thư viện tỉnh",
      "ind.K3": "K3 · Người làm công tác thư viện đã được đào tạo",
      "ind.K4": "K4 · Tăng lượt người sử dụng so với năm trước",
      "ind.completeness": "Báo cáo tháng đầy đủ",
      "ind.timeliness": "Báo cáo tháng đúng hạn",
      "ind.short.K1": "K1 Xã có mô hình",
      "ind.short.K2": "K2 Phối hợp",
      "ind.short.K3": "K3 Đào tạo",
      "ind.short.K4": "K4 Tăng trưởng",
      "ind.short.completeness": "Đầy đủ",
      "ind.short.timeliness": "Đúng hạn",
      "ind.fraction.K1": "{num} / {den} xã",
      "ind.fraction.K2": "{num} / {den} thư viện",
      "ind.fraction.K3": "{num} / {den} người",
      "ind.fraction.K4": "{num} lượt, năm trước {den} (cùng thư viện)",
      "ind.fraction.completeness": "{num} / {den} báo cáo dự kiến",
      "ind.fraction.timeliness": "{num} / {den} báo cáo dự kiến",
      "ind.target": "Mục tiêu {value}",
      "ind.noTarget": "Không có mục tiêu",
      "ind.onTrack": "Đạt mục tiêu",
      "ind.behind": "Chưa đạt",
      "ind.noData": "Chưa có số liệu",
      "targets.title": "Giá trị và mục tiêu năm {year}",
      "targets.value": "Giá trị",
      "targets.target": "Mục tiêu",
      "prov.title": "Từng tỉnh, năm {year}",
      "prov.province": "Tỉnh",
      "prov.note": "Màu xanh: đạt mục tiêu năm; màu cam: chưa đạt. Bấm vào một tỉnh để xem riêng tỉnh đó.",
      "visits.title": "Lượt người sử dụng theo tháng",
      "visits.csv": "Tải CSV",
      "report.title": "Báo cáo tỉnh",
      "report.period": "Kỳ báo cáo",
      "report.download": "Tải báo cáo tỉnh (XLSX)",
      "report.quarter": "Quý {quarter}/{year}",
      "report.month": "Tháng {month}/{year}",
      "report.pick": "Chọn một tỉnh để tải báo cáo của tỉnh đó.",
      "report.for": "Báo cáo của {province}, bằng tiếng Việt.",
      "visits.year": "Năm {year}",
      "visits.yoy": "So với cùng tháng năm trước",
      "visits.axis": "Lượt",
      "visits.axisYoy": "Thay đổi (%)",
      "visits.all": "Tất cả thư viện, {year} so với {prev}",
      "visits.lfl": "Cùng thư viện ({n} thư viện)",
      "visits.cagr": "Tăng bình quân mỗi năm từ {year}",
      "visits.total": "Tổng lượt năm {year}",
      "visits.partial": "Năm {year} chưa kết thúc: so sánh với cả năm trước.",
      "lineage.hint": "Bấm vào một cột hoặc một điểm để xem các báo cáo tạo nên con số đó.",
      "approval.approvedBy": "Đã phê duyệt ({by})",
      "approval.provisional": "Tạm tính",
      "approval.approved": "Đã phê duyệt",
      "approval.marks": "Trạng thái số liệu",
      "approval.title": "Phê duyệt số liệu báo cáo của tỉnh",
      "approval.period": "Kỳ",
      "approval.month": "Tháng {month}/{year}",
      "approval.quarter": "Quý {quarter}/{year}",
      "approval.approve": "Phê duyệt",
      "approval.unapprove": "Bỏ phê duyệt",
      "approval.active": "{period}: phê duyệt bởi {by} lúc {at}",
      "approval.region": "Cấp vùng đã chấp nhận ({by})",
      "approval.accept": "Chấp nhận cấp vùng",
      "approval.none": "Chưa có kỳ nào của tỉnh được phê duyệt.",
      "approval.queue": "Thay đổi đang chờ: {n}",
      "approval.queueEmpty": "Không có thay đổi nào đang chờ.",
      "approval.change": "Thay đổi",
      "approval.change.new": "Báo cáo mới",
      "approval.change.edited": "Báo cáo sửa",
      "approval.change.withdrawn": "Báo cáo rút lại",
      "approval.delta": "Số liệu thay đổi",
      "approval.form": "Biểu mẫu",
      "delta.visits_total": "lượt phục vụ",
      "delta.participants_total": "người tham gia",
      "delta.hours": "giờ đào tạo",
      "delta.books": "cuốn sách",
      "approval.apply": "Áp dụng",
      "approval.decline": "Từ chối",
      "approval.failed": "Không thực hiện được: {detail}",
      "quality.title": "Cảnh báo chất lượng dữ liệu",
      "quality.note": "Mỗi cảnh báo liệt kê các báo cáo liên quan. Đánh dấu \"đã kiểm tra, đúng\" chỉ áp dụng cho cảnh báo như hiện tại: nếu số liệu thay đổi, cảnh báo lại hiện là chưa kiểm tra.",
      "quality.none": "Không có cảnh báo nào trong năm.",
      "quality.rule": "Quy tắc",
      "quality.library": "Thư viện",
      "quality.month": "Tháng",
      "quality.message": "Nội dung",
      "quality.reports": "Báo cáo",
      "quality.status": "Kiểm tra",
      "quality.rule.outlier": "Bất thường so với các tháng trước",
      "quality.rule.zero_visits": "Không có lượt nào",
      "quality.rule.late_report": "Gửi muộn",
      "quality.rule.breakdown_mismatch": "Số liệu thành phần không khớp",
      "quality.rule.closed_day": "Báo cáo ngày thư viện không hoạt động",
      "quality.open": "Xem {n} báo cáo",
      "quality.check": "Đã kiểm tra, đúng",
      "quality.uncheck": "Bỏ đánh dấu",
      "quality.notePlaceholder": "Ghi chú (không bắt buộc)",
      "quality.checkedBy": "Đã kiểm tra, đúng — {by}, {at}",
      "quality.unchecked": "Chưa kiểm tra",
      "quality.failed": "Không thực hiện được: {detail}",
      "quality.lineageTitle": "Các báo cáo của {library}, tháng {month}",
      "lineage.title": "Các báo cáo tạo nên số lượt tháng {month}",
      "lineage.summary": "{chains} báo cáo, tổng {total} lượt; hiện {shown} báo cáo đầu.",
      "lineage.close": "Đóng",
      "lineage.root": "Báo cáo (instanceID đầu)",
      "lineage.library": "Thư viện",
      "lineage.day": "Ngày",
      "lineage.submitter": "Người gửi",
      "lineage.accepted": "Nhận lần đầu",
      "lineage.edits": "Lần sửa",
      "lineage.visits": "Lượt",
      "reporting.title": "Báo cáo hằng tháng: đầy đủ và đúng hạn",
      "reporting.note": "Đầy đủ: tháng có sổ ghi lượt phục vụ ÷ tháng dự kiến của thư viện đang hoạt động. Đúng hạn: nhận được trước hết ngày 10 tháng sau.",
      "rotation.title": "Luân chuyển sách theo tỉnh",
      "rotation.inTransit": "Đang vận chuyển",
      "rotation.onHand": "Đang ở thư viện cơ sở",
      "rotation.onHandShort": "Đang ở thư viện",
      "rotation.overdue": "Quá hạn",
      "rotation.copies": "Bản sách đang luân chuyển",
      "rotation.lossRate": "Tỷ lệ mất",
      "rotation.batches": "Lô sách",
      "rotation.note": "Số lô sách hôm nay. Quá hạn: chưa trả sau {days} ngày kể từ khi xuất.",
      "rotation.noteDefault": "Số lô sách hôm nay. Quá hạn: chưa trả sau thời hạn luân chuyển kể từ khi xuất.",
      "communes.title": "Xã có và chưa có mô hình",
      "communes.filterAll": "Tất cả",
      "communes.with": "Có mô hình",
      "communes.without": "Chưa có mô hình",
      "communes.commune": "Xã",
      "communes.code": "Mã",
      "communes.libraries": "Thư viện cơ sở",
      "communes.model": "Mô hình",
      "communes.yes": "Có",
      "communes.no": "Chưa",
      "communes.summary": "{with} / {total} xã có mô hình ({share}).",
      "communes.pick": "Dưới đây: các xã có thư viện cơ sở; chọn một tỉnh để xem mọi xã của tỉnh.",
      "communes.shown": "Đang hiện {n} xã.",
      "rejections.title": "Bài gửi bị từ chối gần đây và lý do",
      "rejections.time": "Thời gian",
      "rejections.form": "Biểu mẫu",
      "rejections.status": "Mã HTTP",
      "rejections.reason": "Lý do",
      "rejections.none": "Không có bài gửi nào bị từ chối.",
      "deadLetters.title": "Chưa xử lý được (thư chết)",
      "deadLetters.none": "Không có thư chết nào đang mở.",
      "centralPull.title": "Lấy bài từ ODK Central",
      "centralPull.lastPoll": "Lần lấy gần nhất",
      "centralPull.lag": "Độ trễ",
      "centralPull.rows": "Đã nhận / trùng / bị từ chối",
      "centralPull.state": "Tình trạng",
      "centralPull.ok": "Bình thường",
      "centralPull.none": "Không lấy bài từ ODK Central (CENTRAL_CONFIG chưa đặt).",
      "footer.tz": "Giờ theo múi giờ Asia/Ho_Chi_Minh.",
      "footer.docs": "Tài liệu API",
      "error.load": "Không tải được dữ liệu: {detail}",
      "error.noCharts": "Chưa có thư viện biểu đồ (chạy `make static`): chỉ hiện bảng số liệu.",
      months: ["Th1", "Th2", "Th3", "Th4", "Th5", "Th6", "Th7", "Th8", "Th9", "Th10", "Th11", "Th12"],
      forms: {
        visit_log: "Sổ ghi lượt phục vụ", library_registry: "Đăng ký thư viện", rotation_movement: "Luân chuyển sách",
        mobile_session: "Thư viện lưu động", reading_promotion: "Khuyến đọc", staff_training: "Đào tạo",
        donation: "Tài trợ",
      },
    },
    en: {
      title: "Grassroots library model — Dashboard",
      "scheme.label": "Administrative units",
      "scheme.legacy": "14 provinces (before 1 Jul 2025)",
      "scheme.2025": "10 provinces (from 1 Jul 2025)",
      "filter.province": "Province",
      "filter.year": "Year",
      "area.legacy": "All 14 programme provinces",
      "area.2025": "All 10 current provinces",
      "key.title": "Access key",
      "key.prompt": "Enter the API key your administrator gave you (the demo prints one when it starts).",
      "key.label": "API key",
      "key.submit": "Open the dashboard",
      "key.invalid": "The key is wrong or has been revoked. Please enter it again.",
      "key.name": "Key: {name}",
      "key.signOut": "Change key",
      "ind.title": "Indicators against the {year} targets",
      "ind.K1": "K1 · Communes with a grassroots library model",
      "ind.K2": "K2 · Libraries coordinating effectively with the provincial library",
      "ind.K3": "K3 · Library workers trained",
      "ind.K4": "K4 · Growth of user visits on the previous year",
      "ind.completeness": "Monthly reports complete",
      "ind.timeliness": "Monthly reports on time",
      "ind.short.K1": "K1 Model coverage",
      "ind.short.K2": "K2 Coordination",
      "ind.short.K3": "K3 Training",
      "ind.short.K4": "K4 Growth",
      "ind.short.completeness": "Complete",
      "ind.short.timeliness": "On time",
      "ind.fraction.K1": "{num} / {den} communes",
      "ind.fraction.K2": "{num} / {den} libraries",
      "ind.fraction.K3": "{num} / {den} workers",
      "ind.fraction.K4": "{num} visits, {den} the year before (same libraries)",
      "ind.fraction.completeness": "{num} / {den} expected reports",
      "ind.fraction.timeliness": "{num} / {den} expected reports",
      "ind.target": "Target {value}",
      "ind.noTarget": "No target",
      "ind.onTrack": "On track",
      "ind.behind": "Behind",
      "ind.noData": "No data yet",
      "targets.title": "Values and {year} targets",
      "targets.value": "Value",
      "targets.target": "Target",
      "prov.title": "Province by province, {year}",
      "prov.province": "Province",
      "prov.note": "Green: on track for the year's target; orange: behind. Click a province to look at it alone.",
      "visits.title": "User visits by month",
      "visits.csv": "Download CSV",
      "report.title": "Provincial report",
      "report.period": "Period",
      "report.download": "Download provincial report",
      "report.quarter": "Q{quarter} {year}",
      "report.month": "{month}/{year}",
      "report.pick": "Choose a province to download its report.",
      "report.for": "The report of {province}, in English.",
      "visits.year": "{year}",
      "visits.yoy": "Change on the same month last year",
      "visits.axis": "Visits",
      "visits.axisYoy": "Change (%)",
      "visits.all": "All libraries, {year} on {prev}",
      "visits.lfl": "Same libraries ({n} libraries)",
      "visits.cagr": "Average yearly growth since {year}",
      "visits.total": "Visits in {year}",
      "visits.partial": "{year} is not over: compared with the whole previous year.",
      "lineage.hint": "Click a bar or a point to see the reports that make the figure.",
      "approval.approvedBy": "Approved ({by})",
      "approval.provisional": "Provisional",
      "approval.approved": "Approved",
      "approval.marks": "Status of the figures",
      "approval.title": "Approval of the province's reported figures",
      "approval.period": "Period",
      "approval.month": "{year}-{month}",
      "approval.quarter": "Q{quarter} {year}",
      "approval.approve": "Approve",
      "approval.unapprove": "Un-approve",
      "approval.active": "{period}: approved by {by} at {at}",
      "approval.region": "Accepted at the region level ({by})",
      "approval.accept": "Accept at region level",
      "approval.none": "No period of the province is approved.",
      "approval.queue": "Held changes: {n}",
      "approval.queueEmpty": "No change is held.",
      "approval.change": "Change",
      "approval.change.new": "New report",
      "approval.change.edited": "Edited report",
      "approval.change.withdrawn": "Withdrawn report",
      "approval.delta": "Change in figures",
      "approval.form": "Form",
      "delta.visits_total": "visits",
      "delta.participants_total": "participants",
      "delta.hours": "training hours",
      "delta.books": "books",
      "approval.apply": "Apply",
      "approval.decline": "Decline",
      "approval.failed": "Could not be done: {detail}",
      "quality.title": "Data-quality flags",
      "quality.note": "Each flag lists its reports. A \"checked, correct\" mark applies to the flag as it stands: if its figures change, it shows as unchecked again.",
      "quality.none": "No flag in the year.",
      "quality.rule": "Rule",
      "quality.library": "Library",
      "quality.month": "Month",
      "quality.message": "What was found",
      "quality.reports": "Reports",
      "quality.status": "Check",
      "quality.rule.outlier": "Far from the months before",
      "quality.rule.zero_visits": "No visit",
      "quality.rule.late_report": "Sent late",
      "quality.rule.breakdown_mismatch": "Breakdowns do not add up",
      "quality.rule.closed_day": "Report for a day the library was closed",
      "quality.open": "Show {n} report(s)",
      "quality.check": "Checked, correct",
      "quality.uncheck": "Withdraw the mark",
      "quality.notePlaceholder": "Note (optional)",
      "quality.checkedBy": "Checked, correct — {by}, {at}",
      "quality.unchecked": "Not checked",
      "quality.failed": "Could not be done: {detail}",
      "quality.lineageTitle": "The reports of {library}, {month}",
      "lineage.title": "The reports behind the visits of {month}",
      "lineage.summary": "{chains} reports, {total} visits in all; the first {shown} shown.",
      "lineage.close": "Close",
      "lineage.root": "Report (first instanceID)",
      "lineage.library": "Library",
      "lineage.day": "Day",
      "lineage.submitter": "Sent by",
      "lineage.accepted": "First accepted",
      "lineage.edits": "Edits",
      "lineage.visits": "Visits",
      "reporting.title": "Monthly reporting: completeness and timeliness",
      "reporting.note": "Complete: months with a visit log ÷ expected months of operating libraries. On time: received by the 10th of the next month.",
      "rotation.title": "Book rotation by province",
      "rotation.inTransit": "In transit",
      "rotation.onHand": "On hand at grassroots libraries",
      "rotation.onHandShort": "On hand",
      "rotation.overdue": "Overdue",
      "rotation.copies": "Copies in circulation",
      "rotation.lossRate": "Loss rate",
      "rotation.batches": "Batches",
      "rotation.note": "Batches today. Overdue: not returned {days} days after dispatch.",
      "rotation.noteDefault": "Batches today. Overdue: not returned within the loan period after dispatch.",
      "communes.title": "Communes with and without a model",
      "communes.filterAll": "All",
      "communes.with": "With a model",
      "communes.without": "Without a model",
      "communes.commune": "Commune",
      "communes.code": "Code",
      "communes.libraries": "Grassroots libraries",
      "communes.model": "Model",
      "communes.yes": "Yes",
      "communes.no": "Not yet",
      "communes.summary": "{with} of {total} communes have a model ({share}).",
      "communes.pick": "Below: the communes with a grassroots library; choose a province to list all its communes.",
      "communes.shown": "Showing {n} communes.",
      "rejections.title": "Recently rejected submissions and why",
      "rejections.time": "Time",
      "rejections.form": "Form",
      "rejections.status": "HTTP status",
      "rejections.reason": "Reason",
      "rejections.none": "No submission was rejected.",
      "deadLetters.title": "Could not be applied (dead letters)",
      "deadLetters.none": "No open dead letters.",
      "centralPull.title": "Pull from ODK Central",
      "centralPull.lastPoll": "Last poll",
      "centralPull.lag": "Lag",
      "centralPull.rows": "Accepted / duplicates / refused",
      "centralPull.state": "State",
      "centralPull.ok": "OK",
      "centralPull.none": "No pull from ODK Central (CENTRAL_CONFIG is not set).",
      "footer.tz": "Times in Asia/Ho_Chi_Minh.",
      "footer.docs": "API documentation",
      "error.load": "Could not load the data: {detail}",
      "error.noCharts": "The chart library is missing (run `make static`): tables only.",
      months: ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"],
      forms: {
        visit_log: "Visit log", library_registry: "Library registry", rotation_movement: "Book rotation",
        mobile_session: "Mobile library", reading_promotion: "Reading promotion", staff_training: "Staff training",
        donation: "Donation",
      },
    },
  };

  // --- state -------------------------------------------------------------------------------------
  const params = new URLSearchParams(window.location.search);
  const thisYear = Number(new Intl.DateTimeFormat("en", { timeZone: TZ, year: "numeric" }).format(new Date()));
  const state = {
    lang: pickLanguage(params.get("lang") || localStorage.getItem(LANG_STORAGE)),
    key: null,
    scheme: params.get("scheme") === "2025" ? "2025" : "legacy",
    province: params.get("province") || "",
    year: Math.min(Number(params.get("year")) || thisYear, thisYear),  // the API has no future years
    communeFilter: "all",
    generation: 0,
    pending: 0,
    provinces: [],           // [{code, name_vi, name_en}] under state.scheme
    data: {},                // the last answers, kept so a language switch redraws without fetching
  };
  const charts = {};
  window.dashboard = { state, charts };  // for the browser test and the curious

  function pickLanguage(value) {
    return value === "en" ? "en" : "vi";
  }

  // --- small helpers -----------------------------------------------------------------------------
  const $ = (selector) => document.querySelector(selector);

  function t(key, vars = {}) {
    const text = I18N[state.lang][key] ?? I18N.vi[key] ?? key;
    return typeof text === "string"
      ? text.replace(/\{(\w+)\}/g, (_, name) => (vars[name] ?? "").toString())
      : text;
  }

  const nfc = (value) => (value == null ? "" : String(value).normalize("NFC"));
  const locale = () => (state.lang === "vi" ? "vi-VN" : "en-GB");

  function number(value) {
    return value == null ? "—" : new Intl.NumberFormat(locale()).format(value);
  }

  function percent(value, digits = 1) {
    if (value == null || Number.isNaN(value)) return "—";
    return new Intl.NumberFormat(locale(), { style: "percent", maximumFractionDigits: digits,
      minimumFractionDigits: 0 }).format(value);
  }

  /** A moment as dd/mm/yyyy hh:mm in Asia/Ho_Chi_Minh, whatever the browser's own time zone. */
  function dateTime(value) {
    if (!value) return "—";
    const parsed = new Date(value);
    if (Number.isNaN(parsed.getTime())) return nfc(value);
    const parts = Object.fromEntries(new Intl.DateTimeFormat("en-GB", {
      timeZone: TZ, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
      hourCycle: "h23" }).formatToParts(parsed).map((part) => [part.type, part.value]));
    return `${parts.day}/${parts.month}/${parts.year} ${parts.hour}:${parts.minute}`;
  }

  function element(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs)) {
      if (value == null || value === false) continue;
      if (name === "className") node.className = value;
      else if (name === "dataset") Object.assign(node.dataset, value);
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child == null) continue;
      node.append(child instanceof Node ? child : document.createTextNode(nfc(child)));
    }
    return node;
  }

  function areaName(area) {
    if (!area) return "";
    return nfc(state.lang === "vi" ? area.name_vi : (area.name_en || area.name_vi));
  }

  function provinceName(code) {
    const found = state.provinces.find((p) => p.code === code);
    return found ? areaName(found) : code;
  }

  /** The rows of an answer: a list, or a page of one (``items``). */
  function rows(answer) {
    return Array.isArray(answer) ? answer : (answer?.items ?? []);
  }

  /** A library's or a batch's province or commune code under the scheme shown (``areas.<scheme>``). */
  function codeOf(row, level) {
    return row.areas?.[state.scheme]?.[`${level}_code`] ?? null;
  }

  // --- the API -----------------------------------------------------------------------------------
  class AuthError extends Error {}

  function query(values) {
    const search = new URLSearchParams();
    for (const [name, value] of Object.entries(values)) {
      if (value !== "" && value != null) search.set(name, value);
    }
    return search.toString();
  }

  async function api(path, values = {}) {
    const qs = query(values);
    const response = await fetch(`${path}${qs ? `?${qs}` : ""}`, {
      headers: { Authorization: `Bearer ${state.key}`, Accept: "application/json" },
      // Revalidate what the browser holds: an answer unchanged since (a reload, a filter switched
      // back) comes back as 304 and is read from the browser's cache.
      cache: "no-cache",
    });
    return answerOf(response);
  }

  /** A write (approval of periods): ``method`` on ``path`` with a JSON ``body``. */
  async function send(method, path, body) {
    const headers = { Authorization: `Bearer ${state.key}`, Accept: "application/json" };
    if (body) headers["Content-Type"] = "application/json";
    return answerOf(await fetch(path, { method, headers, body: body ? JSON.stringify(body) : undefined }));
  }

  async function answerOf(response) {
    if (response.status === 401) throw new AuthError(response.statusText);
    if (!response.ok) {
      let detail = `${response.status} ${response.statusText}`;
      try {
        const problem = await response.json();
        // Problem details carry the reason in both languages: the page's, English if it has no other.
        detail = (state.lang === "vi" && problem.detail_vi) || problem.detail || problem.title || detail;
      } catch { /* not problem+json */ }
      throw new Error(detail);
    }
    return response.json();
  }

  /** Every item of a paginated list (``items`` and ``next_page_token``), page after page. */
  async function fetchAll(path, values = {}) {
    const items = [];
    let token = null;
    do {
      const answer = await api(path, { ...values, page_size: 1000, page_token: token });
      items.push(...rows(answer));
      token = answer && !Array.isArray(answer) ? answer.next_page_token : null;
    } while (token);
    return items;
  }

  // --- the key: once from #key= (a fragment never reaches the server, nor its logs), then
  // sessionStorage, else a small form -------------------------------------------------------
  function takeKeyFromUrl() {
    const fragment = new URLSearchParams(window.location.hash.slice(1));
    const fromUrl = fragment.get("key");
    if (fromUrl) {
      sessionStorage.setItem(KEY_STORAGE, fromUrl.trim());
      window.history.replaceState(null, "", `${window.location.pathname}${window.location.search}`);
    }
    return sessionStorage.getItem(KEY_STORAGE);
  }

  function askForKey(invalid) {
    sessionStorage.removeItem(KEY_STORAGE);
    state.key = null;
    state.generation += 1;  // answers still on their way are for the key just dropped
    state.data = {};
    $("#content").hidden = true;
    $("#key-panel").hidden = false;
    $("#sign-out").hidden = true;
    $("#key-name").textContent = "";
    $("#key-error").hidden = !invalid;
    $("#key-input").focus();
    document.body.dataset.state = "key";
  }

  async function start() {
    try {
      state.data.me = await api("/v1/me");
      showKeyName();
    } catch (error) {
      if (error instanceof AuthError) return askForKey(true);
      // /v1/me is a courtesy: other answers will say if the key is refused.
    }
    $("#key-panel").hidden = true;
    $("#content").hidden = false;
    $("#rejections").hidden = !isAdmin();  // rejections and dead letters need the admin scope
    $("#sign-out").hidden = false;
    await loadProvinces();
    await refresh();
  }

  function showKeyName() {
    const me = state.data.me;
    $("#key-name").textContent = me ? t("key.name", { name: nfc(me.name) }) : "";
  }

  // --- controls ----------------------------------------------------------------------------------
  function fillYears() {
    const select = $("#year");
    select.replaceChildren(...Array.from({ length: thisYear - 2020 + 1 }, (_, i) => thisYear - i)
      .map((year) => element("option", { value: year, selected: year === state.year }, String(year))));
  }

  /** A key scoped to some provinces may not ask for the whole region (the API answers 403). */
  const readsAll = () => state.data.me?.read_all !== false;
  const isAdmin = () => state.data.me?.admin !== false;

  function fillProvinces() {
    const select = $("#province");
    const sorted = [...state.provinces].sort((a, b) => areaName(a).localeCompare(areaName(b), locale()));
    select.replaceChildren(
      ...(readsAll() ? [element("option", { value: "" }, t(`area.${state.scheme}`))] : []),
      ...sorted.map((p) => element("option", { value: p.code, selected: p.code === state.province },
        `${areaName(p)} (${p.code})`)));
    select.value = state.province;
  }

  async function loadProvinces() {
    try {
      state.provinces = await fetchAll("/v1/areas", { scheme: state.scheme, level: "province" });
    } catch (error) {
      if (error instanceof AuthError) throw error;
      state.provinces = [];
    }
    if (!state.provinces.some((p) => p.code === state.province)) {
      state.province = readsAll() ? "" : ([...state.provinces].sort((a, b) =>
        areaName(a).localeCompare(areaName(b), locale()))[0]?.code ?? "");
    }
    fillProvinces();
  }

  function syncUrl() {
    const values = { scheme: state.scheme, province: state.province, year: state.year,
      lang: state.lang === "vi" ? "" : state.lang };
    const qs = query(values);
    window.history.replaceState(null, "", `${window.location.pathname}${qs ? `?${qs}` : ""}`);
  }

  function closeLineage() {
    state.lineage = null;
    $("#lineage").hidden = true;
  }

  function bindControls() {
    $("#lineage-close").addEventListener("click", closeLineage);
    for (const radio of document.querySelectorAll('input[name="scheme"]')) {
      radio.checked = radio.value === state.scheme;
      radio.addEventListener("change", async () => {
        state.scheme = radio.value;
        state.province = "";  // codes are reused across schemes: a code means another province
        await guarded(async () => { await loadProvinces(); await refresh(); });
      });
    }
    $("#province").addEventListener("change", (event) => {
      state.province = event.target.value;
      guarded(refresh);
    });
    $("#year").addEventListener("change", (event) => {
      state.year = Number(event.target.value);
      guarded(refresh);
    });
    for (const button of document.querySelectorAll("[data-lang]")) {
      button.addEventListener("click", () => setLanguage(button.dataset.lang));
    }
    for (const button of document.querySelectorAll("#commune-filter [data-filter]")) {
      button.addEventListener("click", () => {
        state.communeFilter = button.dataset.filter;
        renderCommuneTable();
      });
    }
    $("#key-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const key = $("#key-input").value.trim();
      if (!key) return;
      sessionStorage.setItem(KEY_STORAGE, key);
      state.key = key;
      $("#key-input").value = "";
      guarded(start);
    });
    $("#sign-out").addEventListener("click", () => askForKey(false));
    $("#csv-link").addEventListener("click", downloadCsv);
    $("#report-download").addEventListener("click", downloadReport);
    $("#approval-form").addEventListener("submit", (event) => {
      event.preventDefault();
      approvalAction("POST", "/v1/approvals", { scheme: state.scheme, province: state.province,
        period: $("#approval-period").value });
    });
  }

  /** Run what a control asked for; the page reads "loading" until it is done, and a refused key
   * brings the key form back. */
  async function guarded(task) {
    busy(+1);
    try {
      await task();
    } catch (error) {
      if (error instanceof AuthError) askForKey(true);
      else console.error(error);
    } finally {
      busy(-1);
    }
  }

  function setLanguage(lang) {
    state.lang = pickLanguage(lang);
    localStorage.setItem(LANG_STORAGE, state.lang);
    applyLanguage();
    syncUrl();
  }

  /** Every fixed label (``data-i18n``) in the reader's language, with the year shown. */
  function applyLabels() {
    for (const node of document.querySelectorAll("[data-i18n]")) {
      node.textContent = t(node.dataset.i18n, { year: state.year });
    }
  }

  function applyLanguage() {
    document.documentElement.lang = state.lang;
    applyLabels();
    for (const button of document.querySelectorAll("[data-lang]")) {
      button.setAttribute("aria-pressed", String(button.dataset.lang === state.lang));
    }
    document.title = t("title");
    if (state.provinces.length) fillProvinces();
    showKeyName();
    renderAll();
  }

  // --- loading -----------------------------------------------------------------------------------
  /** The page's state for a reader (and the browser test): waiting for a key, loading, or ready. */
  function busy(delta) {
    state.pending += delta;
    document.body.dataset.state = !state.key ? "key" : state.pending > 0 ? "loading" : "ready";
  }

  /** Fetch for one or more sections (their error boxes ``shown``); a stale answer (the reader
   * changed a filter since) is dropped. */
  async function section(name, load, render, shown = [name]) {
    const generation = state.generation;
    const errors = shown.map((n) => document.querySelector(`[data-error-for="${n}"]`)).filter(Boolean);
    busy(+1);
    try {
      const answer = await load();
      if (generation !== state.generation) return;
      state.data[name] = answer;
      for (const error of errors) error.hidden = true;
      render();
    } catch (failure) {
      if (failure instanceof AuthError) throw failure;
      if (generation !== state.generation) return;
      state.data[name] = null;
      for (const error of errors) {
        error.hidden = false;
        error.textContent = t("error.load", { detail: failure.message });
      }
      render();
    } finally {
      busy(-1);
    }
  }

  async function refresh() {
    state.generation += 1;
    closeLineage();  // a list of another view's figure
    syncUrl();
    applyLabels();
    renderHeading();
    const view = { scheme: state.scheme, province: state.province, year: state.year };
    busy(+1);
    try {
      await Promise.all([
        // Every chart of the view from one answer (GET /v1/dashboard); the lists of communes and
        // libraries after it, so that their pages do not slow the charts down on a one-engine store.
        section("figures", () => api("/v1/dashboard", view), renderFigures, FIGURE_SECTIONS)
          .then(() => section("communes", loadCommunes, renderCommuneTable)),
        isAdmin() && section("rejections", async () => {
          const [rejections, deadLetters, centralPull] = await Promise.all([
            api("/v1/rejections", { limit: 20 }),
            api("/v1/dead-letters", { limit: 10 }).catch(() => []),
            api("/v1/central-pull").catch(() => null),
          ]);
          return { rejections: rows(rejections), deadLetters: rows(deadLetters),
            centralPull: centralPull?.forms || [] };
        }, renderRejections),
        canApprove() || canAccept() ? section("approval", loadApproval, renderApproval) : renderApproval(),
        section("quality", loadQuality, renderQuality),
      ]);
    } finally {
      busy(-1);
    }
  }

  /** Every commune and library of the scheme, for the table of communes (a province's, or those
   * with a library); kept while the scheme stays. */
  async function loadCommunes() {
    const cached = state.data.communes;
    if (cached && cached.scheme === state.scheme) return cached;
    const [communes, libraries] = await Promise.all([
      fetchAll("/v1/areas", { scheme: state.scheme, level: "commune" }),
      fetchAll("/v1/libraries", { scheme: state.scheme }),
    ]);
    return { scheme: state.scheme, communes, libraries };
  }

  // --- drawing -----------------------------------------------------------------------------------
  const chartsAvailable = () => typeof window.Chart === "function";
  const FIGURE_SECTIONS = ["indicators", "visits", "provinces", "rotation"];
  const FIGURE_CHARTS = ["indicators-chart", "visits-chart", "reporting-chart", "rotation-chart", "communes-chart"];

  /* "Every chart of the view is drawn": performance.mark("charts-drawn") and
   * body[data-charts-drawn] = the view's generation, once each chart drawn from the view's answer
   * has rendered (after its animation, if any). The browser test and bench/dashboard.py wait on it. */
  const drawing = { generation: 0, waiting: new Set() };

  function chartRendered(chart) {  // Chart.js's afterRender: a render, and its animation, complete
    if (drawing.waiting.delete(chart.canvas.id) && !drawing.waiting.size) signalDrawn();
  }

  function signalDrawn() {
    if (drawing.generation !== state.generation) return;  // a newer view is on its way
    performance.mark("charts-drawn", { detail: { generation: drawing.generation } });
    document.body.dataset.chartsDrawn = String(drawing.generation);
  }

  function renderFigures() {
    drawing.generation = state.generation;
    drawing.waiting = new Set(FIGURE_CHARTS);
    renderIndicators();
    renderVisits();
    renderProvinces();
    renderRotation();
    drawCommunes();
    renderReport();
    if (!chartsAvailable()) signalDrawn();  // no chart library: the tables are the figures
  }

  function draw(id, config) {
    if (!chartsAvailable()) return null;
    const existing = charts[id];
    if (existing && existing.config.type === config.type) {
      existing.data = config.data;
      existing.options = config.options;
      existing.update();
      return existing;
    }
    if (existing) existing.destroy();
    charts[id] = new window.Chart(document.getElementById(id), config);
    return charts[id];
  }

  function renderAll() {
    renderHeading();
    if (!$("#content").hidden) {
      renderIndicators();
      renderVisits();
      renderProvinces();
      renderRotation();
      renderCommunes();
      renderRejections();
      renderLineage();
      renderReport();
      renderApproval();
      renderQuality();
    }
  }

  function renderHeading() {
    const province = state.provinces.find((p) => p.code === state.province);
    $("#area-name").textContent = province ? areaName(province) : t(`area.${state.scheme}`);
    $("#year-label").textContent = String(state.year);
  }

  function status(indicator) {
    if (!indicator || indicator.value == null) return "none";
    if (indicator.on_track == null) return "neutral";
    return indicator.on_track ? "on-track" : "behind";
  }

  function renderIndicators() {
    const indicators = state.data.figures?.indicators?.indicators;
    const names = [...INDICATORS, "completeness", "timeliness"];
    $("#indicator-cards").replaceChildren(...names.map((name) => {
      const ind = indicators?.[name];
      const kind = status(ind);
      const badge = kind === "on-track" ? t("ind.onTrack") : kind === "behind" ? t("ind.behind")
        : kind === "none" ? t("ind.noData") : "";
      const hasTarget = ind?.target != null;
      return element("article", { className: `card ${kind}`, dataset: { indicator: name } },
        element("h3", {}, t(`ind.${name}`)),
        element("p", { className: "value" }, percent(ind?.value)),
        element("p", { className: "target" }, hasTarget ? t("ind.target", { value: percent(ind.target, 0) })
          : INDICATORS.includes(name) ? t("ind.noTarget") : "\u00a0"),
        meter(ind),
        element("p", { className: "fraction" }, ind && ind.denominator != null
          ? t(`ind.fraction.${name}`, { num: number(ind.numerator), den: number(ind.denominator) }) : "\u00a0"),
        badge ? element("p", { className: `badge ${kind}` }, badge) : null,
        ind ? approvalState(ind.status) : null);
    }));
    drawTargets(indicators);
  }

  /** A figure's approval state (K4 approved with its two years; the other indicators stay provisional). */
  function approvalState(status) {
    const approved = status === "approved";
    return element("p", { className: "state" }, element("span", {
      className: `mark ${approved ? "approved" : "provisional"}`, dataset: { status: approved ? "approved" : "provisional" },
    }, t(approved ? "approval.approved" : "approval.provisional")));
  }

  /** A bar from 0 to 100 % with the value filled and the target marked. */
  function meter(ind) {
    const clamp = (v) => Math.max(0, Math.min(1, v ?? 0)) * 100;
    const bar = element("div", { className: "meter", role: "presentation" },
      element("span", { className: "fill", style: `width: ${clamp(ind?.value)}%` }));
    if (ind?.target != null) bar.append(element("span", { className: "mark", style: `left: ${clamp(ind.target)}%` }));
    return bar;
  }

  function drawTargets(indicators) {
    const values = INDICATORS.map((name) => pct(indicators?.[name]?.value));
    const targets = INDICATORS.map((name) => pct(indicators?.[name]?.target));
    draw("indicators-chart", {
      type: "bar",
      data: {
        labels: INDICATORS.map((name) => t(`ind.short.${name}`)),
        datasets: [
          { label: t("targets.value"), data: values, backgroundColor: COLORS.current, order: 2 },
          { type: "line", label: t("targets.target"), data: targets, showLine: false, order: 1,
            borderColor: COLORS.target, backgroundColor: COLORS.target, pointStyle: "line",
            pointRadius: 28, pointHoverRadius: 28, pointBorderWidth: 3, borderWidth: 3 },
        ],
      },
      options: chartOptions({ y: { ticks: { callback: (v) => `${v}%` }, beginAtZero: true } },
        { tooltip: { callbacks: { label: (c) => `${c.dataset.label}: ${c.parsed.y?.toFixed(1)}%` } } }),
    });
    document.getElementById("indicators-chart").setAttribute("aria-label", t("targets.title", { year: state.year }));
  }

  /** A legend whose boxes keep the datasets' own colours when the bars are coloured one by one. */
  function legendColors(colors) {
    return {
      legend: { position: "bottom", labels: { boxWidth: 14, generateLabels: (chart) =>
        window.Chart.defaults.plugins.legend.labels.generateLabels(chart).map((item) => ({
          ...item, fillStyle: colors[item.datasetIndex], strokeStyle: colors[item.datasetIndex] })) } },
    };
  }

  const pct = (v) => (v == null ? null : Math.round(v * 1000) / 10);

  function chartOptions(scales = {}, plugins = {}) {
    return {
      responsive: true,
      maintainAspectRatio: false,
      animation: navigator.webdriver ? false : { duration: 300 },
      locale: locale(),
      interaction: { mode: "index", intersect: false },
      plugins: {
        // Legend in the datasets' order (Chart.js would sort it by drawing order).
        legend: { position: "bottom", labels: { boxWidth: 14, sort: (a, b) => a.datasetIndex - b.datasetIndex } },
        ...plugins,
      },
      scales,
    };
  }

  function renderVisits() {
    const answer = state.data.figures;
    const year = state.year;
    const byPeriod = new Map((answer?.visits?.series ?? []).map((row) => [row.period, row]));
    const monthly = (y) => Array.from({ length: 12 }, (_, i) =>
      byPeriod.get(`${y}-${String(i + 1).padStart(2, "0")}`)?.visits_total ?? null);
    const current = monthly(year);
    const previous = monthly(year - 1);
    const yoy = current.map((v, i) => (v != null && previous[i] ? Math.round((v / previous[i] - 1) * 1000) / 10
      : null));
    draw("visits-chart", {
      type: "bar",
      data: {
        labels: t("months"),
        datasets: [
          { label: t("visits.year", { year }), data: current, backgroundColor: COLORS.current, yAxisID: "y",
            order: 3 },
          { type: "line", label: t("visits.year", { year: year - 1 }), data: previous, yAxisID: "y",
            borderColor: COLORS.previous, backgroundColor: COLORS.previous, borderWidth: 2, tension: 0.25,
            order: 2 },
          { type: "line", label: t("visits.yoy"), data: yoy, yAxisID: "yoy", borderColor: COLORS.yoy,
            backgroundColor: COLORS.yoy, borderDash: [6, 4], borderWidth: 2, spanGaps: true, order: 1 },
        ],
      },
      options: {
        ...chartOptions({
          y: { beginAtZero: true, title: { display: true, text: t("visits.axis") },
            ticks: { callback: (v) => number(v) } },
          yoy: { position: "right", grid: { drawOnChartArea: false }, title: { display: true, text: t("visits.axisYoy") },
            ticks: { callback: (v) => `${v}%` } },
        }),
        // A month's bar (this year) or point (last year): the reports that make it (GET /v1/lineage/visits).
        // The point under the pointer, else this year's bar of the month clicked.
        onClick: (event, points, chart) => {
          const point = chart.getElementsAtEventForMode(event, "nearest", { intersect: true }, true)
            .find((p) => p.datasetIndex < 2) ?? points.find((p) => p.datasetIndex === 0);
          if (point) guarded(() => openLineage(point.datasetIndex === 0 ? year : year - 1, point.index + 1));
        },
      },
    });
    document.getElementById("visits-chart").setAttribute("aria-label", t("visits.title"));

    const growth = answer?.growth;
    const items = [];
    const total = current.reduce((sum, v) => sum + (v ?? 0), 0);
    items.push([t("visits.total", { year }), number(total)]);
    if (growth) {
      items.push([t("visits.all", { year, prev: year - 1 }), signed(growth.all?.yoy)]);
      items.push([t("visits.lfl", { n: number(growth.like_for_like?.libraries ?? 0) }),
        signed(growth.like_for_like?.yoy)]);
      if (growth.cagr?.baseline_year != null) {
        items.push([t("visits.cagr", { year: growth.cagr.baseline_year }), signed(growth.cagr.value)]);
      }
    }
    $("#growth").replaceChildren(...items.map(([label, value]) =>
      element("div", {}, element("dt", {}, label), element("dd", {}, value))));
    if (year === thisYear) $("#growth").append(element("p", { className: "note" }, t("visits.partial", { year })));

    renderApprovalMarks(byPeriod, answer?.visits?.approvals ?? []);

    const link = $("#csv-link");
    link.href = csvUrl();
    link.setAttribute("download", `luot-su-dung_${state.scheme}_${state.province || "vung"}_${year}.csv`);
  }

  // --- approval of periods (schemas/AGGREGATES.md, "Approval") ------------------------------------
  /** Whether an approval's period (``2026-03`` or ``2026-Q1``) covers the month ``2026-03``. */
  function covers(period, month) {
    const [year, part] = period.split("-");
    if (!part.startsWith("Q")) return period === month;
    const m = Number(month.slice(5));
    return month.startsWith(`${year}-`) && Math.floor((m - 1) / 3) + 1 === Number(part.slice(1));
  }

  /** A badge per month of the year shown: approved (by whom) or provisional, as the API marks it. */
  function renderApprovalMarks(byPeriod, approvals) {
    const marks = [];
    t("months").forEach((name, i) => {
      const period = `${state.year}-${String(i + 1).padStart(2, "0")}`;
      const row = byPeriod.get(period);
      if (!row) return;
      const approved = row.status === "approved";
      const by = approvals.filter((a) => covers(a.period, period)).map((a) => nfc(a.approved_by)).join(", ");
      marks.push(element("li", { className: `mark ${approved ? "approved" : "provisional"}`,
        dataset: { period, status: row.status } }, `${name}: `,
      approved ? t("approval.approvedBy", { by }) : t("approval.provisional")));
    });
    $("#approval-marks").replaceChildren(...marks);
    $("#approval-marks").setAttribute("aria-label", t("approval.marks"));
  }

  function canApprove() {
    return Boolean(state.province) && (state.data.me?.approves?.[state.scheme] ?? []).includes(state.province);
  }

  /** A key with ``approve:region`` accepts any province's approvals at the region level, whether
   * or not it approves the province itself (``/v1/me`` says ``approves_region``). */
  function canAccept() {
    return Boolean(state.province) && state.data.me?.approves_region === true;
  }

  /** The province's active approvals, each with its held changes. */
  async function loadApproval() {
    const answer = await api("/v1/approvals", { scheme: state.scheme, province: state.province, status: "active" });
    const approvals = answer.approvals ?? [];
    const queues = await Promise.all(approvals.map((a) =>
      api(`/v1/approvals/${encodeURIComponent(a.approval_id)}/queue`)));
    return approvals.map((a, i) => ({ ...a, items: queues[i].items ?? [] }));
  }

  /** The months and quarters of the year shown that have begun, the last month first. */
  function periodOptions() {
    const now = Number(new Intl.DateTimeFormat("en", { timeZone: TZ, month: "numeric" }).format(new Date()));
    const last = state.year < thisYear ? 12 : now;
    const months = Array.from({ length: last }, (_, i) => last - i).map((m) =>
      [`${state.year}-${String(m).padStart(2, "0")}`, t("approval.month", { month: String(m).padStart(2, "0"),
        year: state.year })]);
    const quarters = Array.from({ length: Math.floor((last - 1) / 3) + 1 }, (_, i) => i + 1).map((q) =>
      [`${state.year}-Q${q}`, t("approval.quarter", { quarter: q, year: state.year })]);
    // Last month first: the month a province approves once its reports are in.
    if (state.year === thisYear && months.length > 1) months.push(months.shift());
    return [...months, ...quarters];
  }

  function renderApproval() {
    const panel = $("#approval");
    panel.hidden = !canApprove() && !canAccept();
    if (panel.hidden) return;
    $("#approval-form").hidden = !canApprove();  // a region acceptor who does not approve the province
    const select = $("#approval-period");
    const chosen = select.value;
    select.replaceChildren(...periodOptions().map(([value, label]) =>
      element("option", { value, selected: value === chosen }, label)));
    const list = state.data.approval ?? [];
    $("#approval-list").replaceChildren(...(list.length ? list.map(approvalBlock)
      : [element("p", { className: "note" }, t("approval.none"))]));
  }

  function approvalBlock(approval) {
    const id = encodeURIComponent(approval.approval_id);
    const items = approval.items;
    return element("div", { className: "approval", dataset: { approval: approval.approval_id,
      period: approval.period } },
    element("p", {}, t("approval.active", { period: approval.period, by: nfc(approval.approved_by),
      at: dateTime(approval.approved_at) }), " ",
    regionAcceptance(approval, id), " ",
    canApprove() ? element("button", { className: "button", type: "button", dataset: { action: "unapprove" },
      onclick: () => approvalAction("DELETE", `/v1/approvals/${id}`) }, t("approval.unapprove")) : null),
    element("h3", {}, t("approval.queue", { n: number(items.length) })),
    items.length ? element("table", { className: "data queue" },
      element("thead", {}, element("tr", {}, ...["approval.change", "approval.form", "lineage.library",
        "lineage.day", "approval.delta", null].map((key) => element("th", {}, key ? t(key) : "")))),
      element("tbody", {}, ...items.map((item) => {
        const report = item.after ?? item.before;
        const path = `/v1/approvals/${id}/queue/${encodeURIComponent(item.item_id)}`;
        return element("tr", { dataset: { item: item.item_id } },
          element("td", {}, t(`approval.change.${item.change}`)),
          element("td", { className: "form" }, t("forms")[item.form] || nfc(item.form)),
          element("td", {}, nfc(report?.library_id)),
          element("td", {}, nfc(report?.occurred_on)),
          element("td", { className: "num" }, heldDelta(item)),
          // Applying or declining is the province's approver's (a region acceptor sees the deltas).
          canApprove() ? element("td", {},
            element("button", { className: "button", type: "button", dataset: { action: "apply" },
              onclick: () => approvalAction("POST", `${path}/apply`) }, t("approval.apply")), " ",
            element("button", { className: "button", type: "button", dataset: { action: "decline" },
              onclick: () => approvalAction("POST", `${path}/decline`) }, t("approval.decline")))
            : element("td", {}));
      })))
      : element("p", { className: "note" }, t("approval.queueEmpty")));
  }

  /** What applying a held change moves: its form's main count (a visit log's visits, a mobile session's
   * visits, a reading event's participants, a training's hours, a donation's books), with its unit. */
  const HELD_MEASURE = { visit_log: "visits_total", mobile_session: "visits_total",
    reading_promotion: "participants_total", staff_training: "hours", donation: "books" };
  function heldDelta(item) {
    const measure = HELD_MEASURE[item.form] ?? "visits_total";
    return `${signedNumber(item.delta[measure] ?? 0)} ${t(`delta.${measure}`)}`;
  }

  /** Who accepted the approval at the region level; else, for a key that may, the button to accept it. */
  function regionAcceptance(approval, id) {
    if (approval.region_accepted_by) {
      return element("span", { className: "mark approved", dataset: { mark: "region" } },
        t("approval.region", { by: nfc(approval.region_accepted_by) }));
    }
    return canAccept() ? element("button", { className: "button", type: "button", dataset: { action: "accept" },
      onclick: () => approvalAction("POST", `/v1/approvals/${id}/region-acceptance`) }, t("approval.accept")) : null;
  }

  function signedNumber(value) {
    return new Intl.NumberFormat(locale(), { signDisplay: "exceptZero" }).format(value ?? 0);
  }

  /** Approve, un-approve, apply, decline or accept at the region level; then the figures, the
   * badges and the queue again. */
  function approvalAction(method, path, body) {
    return guarded(async () => {
      const box = document.querySelector('[data-error-for="approval"]');
      try {
        await send(method, path, body);
        box.hidden = true;
      } catch (failure) {
        if (failure instanceof AuthError) throw failure;
        box.hidden = false;
        box.textContent = t("approval.failed", { detail: failure.message });
        return;
      }
      await refresh();
    });
  }

  function signed(value) {
    if (value == null) return "—";
    const text = new Intl.NumberFormat(locale(), { style: "percent", minimumFractionDigits: 1,
      maximumFractionDigits: 1, signDisplay: "exceptZero" }).format(value);
    return text;
  }

  function csvUrl() {
    const qs = query({ scheme: state.scheme, province: state.province, start: `${state.year - 1}-01-01`,
      end: `${state.year}-12-31`, granularity: "month", format: "csv" });
    return `/v1/visits?${qs}`;
  }

  /** The CSV needs the key in a header, which a plain link cannot send: fetch it, then save it. */
  async function downloadCsv(event) {
    event.preventDefault();
    const link = event.currentTarget;
    try {
      const response = await fetch(link.href, { headers: { Authorization: `Bearer ${state.key}`, Accept: "text/csv" } });
      if (response.status === 401) return askForKey(true);
      if (!response.ok) throw new Error(`${response.status} ${response.statusText}`);
      const url = URL.createObjectURL(await response.blob());
      const save = element("a", { href: url, download: link.getAttribute("download") });
      document.body.append(save);
      save.click();
      save.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    } catch (error) {
      const box = document.querySelector('[data-error-for="visits"]');
      box.hidden = false;
      box.textContent = t("error.load", { detail: error.message });
    }
  }

  /** The provincial report's periods: the quarters and months of the year shown that have begun. */
  function reportPeriods() {
    const now = new Date(new Date().toLocaleString("en-US", { timeZone: TZ }));
    const last = state.year < now.getFullYear() ? 12 : now.getMonth() + 1;
    const periods = [];
    for (let quarter = Math.ceil(last / 3); quarter >= 1; quarter -= 1) {
      periods.push([`${state.year}-Q${quarter}`, t("report.quarter", { quarter, year: state.year })]);
    }
    for (let month = last; month >= 1; month -= 1) {
      const mm = String(month).padStart(2, "0");
      periods.push([`${state.year}-${mm}`, t("report.month", { month: mm, year: state.year })]);
    }
    return periods;
  }

  function renderReport() {
    const select = $("#report-period");
    const chosen = select.value;
    const periods = reportPeriods();
    select.replaceChildren(...periods.map(([value, label]) => element("option", { value }, label)));
    if (periods.some(([value]) => value === chosen)) select.value = chosen;
    const province = state.provinces.find((p) => p.code === state.province);
    $("#report-download").disabled = !province;
    $("#report-note").textContent = province ? t("report.for", { province: areaName(province) }) : t("report.pick");
  }

  /** The workbook needs the key in a header, which a plain link cannot send: fetch it, then save it
   * under the name the server gives (Content-Disposition's filename*, UTF-8). */
  async function downloadReport() {
    const box = document.querySelector('[data-error-for="report"]');
    box.hidden = true;
    const qs = query({ scheme: state.scheme, province: state.province, period: $("#report-period").value,
      lang: state.lang });
    try {
      const response = await fetch(`/v1/reports/province?${qs}`, { headers: { Authorization: `Bearer ${state.key}` } });
      if (response.status === 401) return askForKey(true);
      if (!response.ok) {
        let detail = `${response.status} ${response.statusText}`;
        try {
          const problem = await response.json();
          detail = (state.lang === "vi" ? problem.detail_vi : problem.detail) || detail;
        } catch { /* not problem+json */ }
        throw new Error(detail);
      }
      const disposition = response.headers.get("Content-Disposition") || "";
      const named = /filename\*=UTF-8''([^;]+)/.exec(disposition);
      const name = named ? decodeURIComponent(named[1]) : `bao-cao-${state.province}.xlsx`;
      const url = URL.createObjectURL(await response.blob());
      const save = element("a", { href: url, download: name });
      document.body.append(save);
      save.click();
      save.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    } catch (error) {
      box.hidden = false;
      box.textContent = t("error.load", { detail: error.message });
    }
  }

  function renderProvinces() {
    const answers = (state.data.figures?.provinces ?? []).map((body) => ({ code: body.area.code,
      indicators: body.indicators }));
    const columns = [...INDICATORS, "completeness", "timeliness"];
    const table = $("#province-table");
    table.tHead.replaceChildren(element("tr", {}, element("th", { scope: "col" }, t("prov.province")),
      ...columns.map((name) => element("th", { scope: "col", title: t(`ind.${name}`) }, t(`ind.short.${name}`)))));
    const sorted = [...answers].sort((a, b) => provinceName(a.code).localeCompare(provinceName(b.code), locale()));
    table.tBodies[0].replaceChildren(...sorted.map(({ code, indicators }) =>
      element("tr", { className: code === state.province ? "selected" : null, dataset: { province: code },
        tabindex: 0, onclick: () => selectProvince(code), onkeydown: (e) => e.key === "Enter" && selectProvince(code) },
      element("th", { scope: "row" }, provinceName(code)),
      ...columns.map((name) => {
        const ind = indicators?.[name];
        return element("td", { className: `num ${status(ind)}`,
          title: ind?.denominator != null ? `${number(ind.numerator)} / ${number(ind.denominator)}` : null },
        percent(ind?.value));
      }))));
    drawReporting(sorted);
  }

  function selectProvince(code) {
    state.province = state.province === code ? "" : code;
    $("#province").value = state.province;
    guarded(refresh);
  }

  function drawReporting(sorted) {
    draw("reporting-chart", {
      type: "bar",
      data: {
        labels: sorted.map((a) => provinceName(a.code)),
        datasets: ["completeness", "timeliness"].map((name) => ({
          label: t(`ind.${name}`), data: sorted.map((a) => pct(a.indicators?.[name]?.value)),
          backgroundColor: COLORS[name],
        })),
      },
      options: chartOptions({ y: { beginAtZero: true, max: 100, ticks: { callback: (v) => `${v}%` } },
        x: { ticks: { autoSkip: false, maxRotation: 60 } } }),
    });
    document.getElementById("reporting-chart").setAttribute("aria-label", t("reporting.title"));
  }

  /** Per province today: batches in transit (dispatched, not yet received), on hand (received, not
   * returned) and overdue; copies in circulation and the loss rate. */
  function renderRotation() {
    const answer = state.data.figures?.rotation;
    const sorted = [...(answer?.items ?? [])].sort((a, b) => provinceName(a.province_code)
      .localeCompare(provinceName(b.province_code), locale()));
    const counts = sorted.map((row) => ({ inTransit: row.batches_in_transit ?? 0, onHand: row.batches_on_hand ?? 0,
      overdue: row.batches_overdue ?? 0 }));
    draw("rotation-chart", {
      type: "bar",
      data: {
        labels: sorted.map((row) => provinceName(row.province_code)),
        datasets: [
          { label: t("rotation.inTransit"), data: counts.map((c) => c.inTransit), backgroundColor: COLORS.inTransit },
          { label: t("rotation.onHand"), data: counts.map((c) => c.onHand), backgroundColor: COLORS.onHand },
          { label: t("rotation.overdue"), data: counts.map((c) => c.overdue), backgroundColor: COLORS.overdue },
        ],
      },
      options: chartOptions({ y: { beginAtZero: true, ticks: { precision: 0 },
        title: { display: true, text: t("rotation.batches") } }, x: { ticks: { autoSkip: false, maxRotation: 60 } } }),
    });
    document.getElementById("rotation-chart").setAttribute("aria-label", t("rotation.title"));
    const table = $("#rotation-table");
    table.tHead.replaceChildren(element("tr", {}, element("th", {}, t("prov.province")),
      element("th", {}, t("rotation.inTransit")), element("th", {}, t("rotation.onHandShort")),
      element("th", {}, t("rotation.overdue")), element("th", {}, t("rotation.copies")),
      element("th", {}, t("rotation.lossRate"))));
    table.tBodies[0].replaceChildren(...sorted.map((row, i) => element("tr", {
      className: row.province_code === state.province ? "selected" : null },
      element("th", { scope: "row" }, provinceName(row.province_code)),
      element("td", { className: "num" }, number(counts[i].inTransit)),
      element("td", { className: "num" }, number(counts[i].onHand)),
      element("td", { className: `num ${counts[i].overdue ? "behind" : ""}` }, number(counts[i].overdue)),
      element("td", { className: "num" }, number(row.copies_in_circulation)),
      element("td", { className: "num" }, percent(row.loss_rate)))));
    const days = answer?.loan_days;
    $("#rotation-note").textContent = days ? t("rotation.note", { days }) : t("rotation.noteDefault");
  }

  function renderCommunes() {
    drawCommunes();
    renderCommuneTable();
  }

  /** Per province: communes with and without a model (the chart), whatever the province filter. */
  function drawCommunes() {
    const perProvince = new Map((state.data.figures?.communes?.items ?? []).map((row) =>
      [row.province_code, { with: row.with_model, without: row.communes - row.with_model }]));
    const provinces = [...perProvince.keys()].sort((a, b) => provinceName(a).localeCompare(provinceName(b), locale()));
    draw("communes-chart", {
      type: "bar",
      data: {
        labels: provinces.map(provinceName),
        datasets: [
          { label: t("communes.with"), data: provinces.map((p) => perProvince.get(p).with),
            backgroundColor: provinces.map((p) => (!state.province || p === state.province ? COLORS.withModel
              : COLORS.withModelFaded)) },
          { label: t("communes.without"), data: provinces.map((p) => perProvince.get(p).without),
            backgroundColor: provinces.map((p) => (!state.province || p === state.province ? COLORS.withoutModel
              : COLORS.withoutModelFaded)) },
        ],
      },
      options: { ...chartOptions({ x: { stacked: true, beginAtZero: true, ticks: { precision: 0 } },
        y: { stacked: true, ticks: { autoSkip: false } } }, legendColors([COLORS.withModel, COLORS.withoutModel])),
      indexAxis: "y" },
    });
    document.getElementById("communes-chart").setAttribute("aria-label", t("communes.title"));
  }

  /** The communes of the chosen province (or, for the region, those with a library), from the lists. */
  function renderCommuneTable() {
    for (const button of document.querySelectorAll("#commune-filter [data-filter]")) {
      button.setAttribute("aria-pressed", String(button.dataset.filter === state.communeFilter));
    }
    const answer = state.data.communes;
    const allCommunes = answer?.communes || [];
    const byCommune = new Map();
    for (const lib of answer?.libraries || []) {
      const code = codeOf(lib, "commune");
      if (!code) continue;
      const entry = byCommune.get(code) || { libraries: 0, model: false };
      entry.libraries += 1;
      entry.model = entry.model || Boolean(lib.in_model);
      byCommune.set(code, entry);
    }
    const communes = allCommunes.filter((c) => !state.province || c.province_code === state.province);
    const withModel = communes.filter((c) => byCommune.get(c.code)?.model).length;
    $("#commune-summary").textContent = communes.length
      ? t("communes.summary", { with: number(withModel), total: number(communes.length),
        share: percent(withModel / communes.length) }) : "";
    const table = $("#commune-table");
    table.tHead.replaceChildren(element("tr", {}, element("th", {}, t("communes.commune")),
      element("th", {}, t("communes.code")), element("th", {}, t("communes.libraries")),
      element("th", {}, t("communes.model"))));
    if (!state.province) {
      // The whole region is thousands of communes: list them one province at a time.
      const listed = communes.filter((c) => byCommune.has(c.code)).filter(communeFilter(byCommune));
      table.tBodies[0].replaceChildren(...communeRows(listed, byCommune));
      $("#commune-summary").append(" ", element("span", { className: "note" }, t("communes.pick")));
      return;
    }
    const listed = communes.filter(communeFilter(byCommune));
    table.tBodies[0].replaceChildren(...communeRows(listed, byCommune));
    $("#commune-summary").textContent += ` ${t("communes.shown", { n: number(listed.length) })}`;
  }

  function communeFilter(byCommune) {
    return (commune) => state.communeFilter === "all"
      || (state.communeFilter === "with") === Boolean(byCommune.get(commune.code)?.model);
  }

  function communeRows(list, byCommune) {
    const sorted = [...list].sort((a, b) => {
      const model = Number(Boolean(byCommune.get(b.code)?.model)) - Number(Boolean(byCommune.get(a.code)?.model));
      return model || areaName(a).localeCompare(areaName(b), locale());
    });
    return sorted.map((commune) => {
      const entry = byCommune.get(commune.code);
      return element("tr", { className: entry?.model ? "with-model" : null },
        element("th", { scope: "row" }, areaName(commune)),
        element("td", { className: "code" }, commune.code),
        element("td", { className: "num" }, number(entry?.libraries ?? 0)),
        element("td", { className: entry?.model ? "on-track" : "muted" },
          entry?.model ? t("communes.yes") : t("communes.no")));
    });
  }

  /** The reports that make a month's visits: the first page of GET /v1/lineage/visits, with the
   * figure's own parameters (the view's scheme and province, the month as the period). */
  /** The reports behind a month's visits: of the view's area, or of one ``library`` (a flag's). */
  // --- data quality: the flags of the view, each with its reports, marked "checked, correct" ---------
  async function loadQuality() {
    return fetchAll("/v1/data-quality", { scheme: state.scheme, province: state.province,
      start: `${state.year}-01-01`, end: `${state.year}-12-31` });
  }

  /** An officer approving the flag's province (a 2025 province's scope covers its legacy provinces:
   * ``/v1/me`` lists them) may mark it. */
  function canMark(flag) {
    return (state.data.me?.approves?.legacy ?? []).includes(flag.areas?.legacy?.province_code);
  }

  function checkPath(flag) {
    return `/v1/data-quality/${flag.flag_id.split("/").map(encodeURIComponent).join("/")}/check`;
  }

  function qualityAction(method, flag, body) {
    return guarded(async () => {
      const box = document.querySelector('[data-error-for="quality"]');
      try {
        await send(method, checkPath(flag), body);
        box.hidden = true;
      } catch (failure) {
        if (failure instanceof AuthError) throw failure;
        box.hidden = false;
        box.textContent = t("quality.failed", { detail: failure.message });
        return;
      }
      await section("quality", loadQuality, renderQuality);
    });
  }

  function checkCell(flag) {
    if (flag.checked) {
      return element("td", { className: "check checked" },
        element("span", { title: nfc(flag.check_note) || null },
          t("quality.checkedBy", { by: nfc(flag.checked_by), at: dateTime(flag.checked_at) })),
        flag.check_note ? element("span", { className: "check-note" }, flag.check_note) : null,
        canMark(flag) ? element("button", { type: "button", className: "link", dataset: { action: "uncheck" },
          onclick: () => qualityAction("DELETE", flag) }, t("quality.uncheck")) : null);
    }
    if (!canMark(flag)) return element("td", { className: "check" }, t("quality.unchecked"));
    const note = element("input", { type: "text", maxlength: 500, placeholder: t("quality.notePlaceholder"),
      "aria-label": t("quality.notePlaceholder") });
    return element("td", { className: "check" }, note, element("button", { type: "button", className: "button",
      dataset: { action: "check" }, onclick: () => qualityAction("POST", flag, { note: note.value }) },
    t("quality.check")));
  }

  function renderQuality() {
    const table = $("#quality-table");
    const flags = state.data.quality ?? [];
    table.tHead.replaceChildren(element("tr", {}, ...["quality.rule", "quality.library", "quality.month",
      "quality.message", "quality.reports", "quality.status"].map((key) => element("th", { scope: "col" }, t(key)))));
    if (!flags.length) {
      table.tBodies[0].replaceChildren(element("tr", {}, element("td", { colspan: 6, className: "note" },
        t("quality.none"))));
      return;
    }
    table.tBodies[0].replaceChildren(...flags.map((flag) => {
      const [year, month] = flag.month.split("-").map(Number);
      return element("tr", { dataset: { flagId: flag.flag_id, checked: String(flag.checked) } },
        element("td", {}, t(`quality.rule.${flag.rule}`)),
        element("td", {}, flag.library_id),
        element("td", {}, `${String(month).padStart(2, "0")}/${year}`),
        element("td", {}, state.lang === "vi" ? flag.message_vi : flag.message_en),
        element("td", {}, element("button", { type: "button", className: "link", dataset: { action: "open" },
          onclick: () => guarded(() => openLineage(year, month, flag.library_id)) },
        t("quality.open", { n: number(flag.reports) }))),
        checkCell(flag));
    }));
  }

  async function openLineage(year, month, library = null) {
    const mm = String(month).padStart(2, "0");
    const last = new Date(Date.UTC(year, month, 0)).getUTCDate();
    const area = library ? { library } : { province: state.province };
    const answer = await api("/v1/lineage/visits", { scheme: state.scheme, ...area,
      start: `${year}-${mm}-01`, end: `${year}-${mm}-${last}`, granularity: "month", page_size: 100 });
    state.lineage = { month: `${mm}/${year}`, library, answer };
    renderLineage();
    $("#lineage").hidden = false;
    $("#lineage").scrollIntoView({ block: "nearest" });
  }

  function renderLineage() {
    if (!state.lineage) return;
    const { month, library, answer } = state.lineage;
    const items = answer.items ?? [];
    const total = (answer.series ?? []).reduce((sum, row) => sum + row.visits_total, 0);
    $("#lineage-title").textContent = library ? t("quality.lineageTitle", { library, month })
      : t("lineage.title", { month });
    $("#lineage-summary").textContent = t("lineage.summary", { chains: number(answer.chains), total: number(total),
      shown: number(items.length) });
    const table = $("#lineage-table");
    table.tHead.replaceChildren(element("tr", {}, ...["lineage.root", "lineage.library", "lineage.day",
      "lineage.submitter", "lineage.accepted", "lineage.edits", "lineage.visits"].map((key) =>
      element("th", { scope: "col" }, t(key)))));
    table.tBodies[0].replaceChildren(...items.map((row) => element("tr", {},
      element("td", { title: row.instance_id }, row.root_id),
      element("td", {}, row.library_id),
      element("td", {}, row.occurred_on),
      element("td", {}, row.submitter ?? "—"),
      element("td", { className: "time" }, dateTime(row.first_accepted_at)),
      element("td", { className: "num" }, number(row.edits.length)),
      element("td", { className: "num" }, number(row.contribution.visits_total)))));
  }

  function renderRejections() {
    const answer = state.data.rejections;
    const rejections = answer?.rejections || [];
    const reason = (row) => nfc(state.lang === "vi" ? row.reason_vi : (row.reason_en || row.reason_vi));
    const form = (id) => t("forms")[id] || nfc(id) || "—";
    const table = $("#rejection-table");
    table.tHead.replaceChildren(element("tr", {}, element("th", {}, t("rejections.time")),
      element("th", {}, t("rejections.form")), element("th", {}, t("rejections.status")),
      element("th", {}, t("rejections.reason"))));
    table.tBodies[0].replaceChildren(...(rejections.length ? rejections.map((row) => element("tr", {},
      element("td", { className: "time" }, dateTime(row.received_at)),
      element("td", { className: "form" }, form(row.form_id)),
      element("td", { className: "num" }, String(row.status ?? "")),
      element("td", { title: row.reason_code }, reason(row))))
      : [element("tr", {}, element("td", { colspan: 4, className: "note" }, t("rejections.none")))]));

    const letters = answer?.deadLetters || [];
    const dead = $("#dead-letter-table");
    dead.tHead.replaceChildren(element("tr", {}, element("th", {}, t("rejections.time")),
      element("th", {}, t("rejections.form")), element("th", {}, t("rejections.reason"))));
    dead.tBodies[0].replaceChildren(...(letters.length ? letters.map((row) => element("tr", {},
      element("td", { className: "time" }, dateTime(row.recorded_at)),
      element("td", { className: "form" }, form(row.form_id)),
      element("td", { title: row.reason_code }, reason(row))))
      : [element("tr", {}, element("td", { colspan: 3, className: "note" }, t("deadLetters.none")))]));

    // The ODK Central pull, per form (GET /v1/central-pull): the error is Central's or the bus's own words.
    const pulls = answer?.centralPull || [];
    const pull = $("#central-pull-table");
    pull.tHead.replaceChildren(element("tr", {}, element("th", {}, t("rejections.form")),
      element("th", {}, t("centralPull.lastPoll")), element("th", {}, t("centralPull.lag")),
      element("th", {}, t("centralPull.rows")), element("th", {}, t("centralPull.state"))));
    pull.tBodies[0].replaceChildren(...(pulls.length ? pulls.map((row) => element("tr", {},
      element("td", { className: "form", title: row.central_url }, form(row.form_id)),
      element("td", { className: "time" }, row.last_poll_ended ? dateTime(row.last_poll_ended) : "—"),
      element("td", { className: "num" }, row.lag_seconds == null ? "—" : `${number(Math.round(row.lag_seconds))} s`),
      element("td", { className: "num" }, [row.rows.accepted + row.rows.replaced, row.rows.duplicates,
        row.rows.rejected].map(number).join(" / ")),
      element("td", { className: row.ok ? "on-track" : "error", title: row.summary },
        row.ok ? t("centralPull.ok") : nfc(row.last_error || row.summary))))
      : [element("tr", {}, element("td", { colspan: 5, className: "note" }, t("centralPull.none")))]));
  }

  // --- start ---------------------------------------------------------------------------------
  function init() {
    state.key = takeKeyFromUrl();
    fillYears();
    bindControls();
    applyLanguage();
    if (!chartsAvailable()) {
      const note = element("p", { className: "error", dataset: { i18n: "error.noCharts" } }, t("error.noCharts"));
      $("#content").prepend(note);
    } else {
      window.Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
      window.Chart.defaults.color = "#334155";
      window.Chart.register({ id: "thuvienDrawn", afterRender: chartRendered });
    }
    if (!state.key) askForKey(false);
    else guarded(start);
  }

  init();
})();
